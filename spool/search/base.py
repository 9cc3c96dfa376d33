"""What both post indexes share: the document, the one error, the interface, the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Longer user queries are cut: they only cost time and, in Elasticsearch, can exceed the
# clause limit and fail the request.
MAX_QUERY_CHARS = 1000
MAX_QUERY_TOKENS = 64
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class PostDocument:
    post_id: str
    version: int
    author_id: str
    title: str
    body: str
    tags: list[str] = field(default_factory=list)
    published_at: str | None = None
    # What orders this write against the post's other writes (spool/models/posts.py): the
    # index's external version. None: the post's version. Not part of what the document says.
    fence: int | None = field(default=None, compare=False)

    @property
    def order(self) -> int:
        return self.version if self.fence is None else self.fence


class IndexUnavailable(Exception):
    """The index cannot be reached or answered with a server error: retry later."""


class PostIndex(Protocol):
    def upsert(self, doc: PostDocument) -> bool: ...
    def retract(self, post_id: str, fence: int) -> bool: ...
    def get(self, post_id: str) -> PostDocument | None: ...
    def search(self, query: str, limit: int = 20) -> list[str]: ...
    def refresh(self) -> None: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


def check_version(doc: PostDocument) -> None:
    # Elasticsearch external versions are non-negative longs; SQLite follows the same rule.
    if not isinstance(doc.version, int) or doc.version < 0:
        raise ValueError(
            f"post {doc.post_id}: version must be a non-negative integer, got {doc.version!r}"
        )
    check_fence(doc.post_id, doc.order)


def check_fence(post_id: str, fence: int) -> None:
    if not isinstance(fence, int) or not 0 <= fence < 2**63:
        raise ValueError(f"post {post_id}: fence must be a non-negative long, got {fence!r}")


def clip_query(query: str) -> str:
    return (query or "")[:MAX_QUERY_CHARS]
