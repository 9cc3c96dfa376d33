"""The post index in Elasticsearch: document id = post id, the write's fence (the post's
version, for a publish started on its own) as an external version, so a write at the same or
an older fence is a conflict, answered False. An unpublished or deleted post stays as a
tombstone (``retracted``) at its fence rather than being deleted: Elasticsearch forgets a
deleted document's version after ``index.gc_deletes``, and a late write would then bring the
post back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from spool.search.base import (
    REQUEST_TIMEOUT_SECONDS,
    IndexUnavailable,
    PostDocument,
    check_fence,
    check_version,
    clip_query,
)

INDEX_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0}
# Only the standard analyzer: the integ-test distribution has no analysis-common module.
INDEX_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "post_id": {"type": "keyword"},
        "version": {"type": "long"},
        "author_id": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "standard"},
        "body": {"type": "text", "analyzer": "standard"},
        # keyword for exact filters; tags.text so a search for "learning" finds "machine-learning"
        "tags": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "standard"}}},
        "published_at": {"type": "date"},
        "retracted": {"type": "boolean"},
    },
}
# Indexes made before tombstones existed get the field added (adding one is allowed).
TOMBSTONE_FIELD = {"retracted": {"type": "boolean"}}
SEARCH_FIELDS = ["title^2", "body", "tags.text"]


class ElasticsearchIndex:
    def __init__(
        self, url: str, index: str, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        from elasticsearch import Elasticsearch

        self.url = url
        self.index = index
        # Temporal owns retries: the client makes exactly one attempt per call.
        self._es = Elasticsearch(
            url, max_retries=0, retry_on_timeout=False, request_timeout=request_timeout
        )
        self._index_ready = False
        self._lock = threading.Lock()

    @contextmanager
    def _unavailable_on_failure(self, action: str) -> Iterator[None]:
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        try:
            yield
        except ApiError as exc:
            # 5xx and 429 (overloaded) pass with time; other 4xx are the caller's mistake.
            if exc.meta.status >= 500 or exc.meta.status == 429:
                raise IndexUnavailable(
                    f"Elasticsearch at {self.url} answered {exc.meta.status} to {action} "
                    f"on index {self.index!r}: {exc.message}"
                ) from exc
            raise
        except TransportError as exc:
            # Connection refused/reset, timeout, or a non-JSON answer (e.g. a proxy's 503 page).
            raise IndexUnavailable(
                f"Elasticsearch at {self.url} unavailable for {action} on index "
                f"{self.index!r}: {type(exc).__name__}: {exc}"
            ) from exc

    def _ensure_index(self) -> None:
        if self._index_ready:
            return
        from elasticsearch import BadRequestError

        with self._lock, self._unavailable_on_failure("create index"):
            if self._index_ready:
                return
            try:
                self._es.indices.create(
                    index=self.index, settings=INDEX_SETTINGS, mappings=INDEX_MAPPINGS
                )
            except BadRequestError as exc:
                # Another worker created it first, or an older Spool did: the same mapping,
                # perhaps without the tombstone field yet.
                if exc.message != "resource_already_exists_exception":
                    raise
                self._es.indices.put_mapping(index=self.index, properties=TOMBSTONE_FIELD)
            self._index_ready = True

    def upsert(self, doc: PostDocument) -> bool:
        check_version(doc)
        self._ensure_index()
        source = {
            "post_id": doc.post_id,
            "version": doc.version,
            "author_id": doc.author_id,
            "title": doc.title,
            "body": doc.body,
            "tags": list(doc.tags),
            "published_at": doc.published_at,
        }
        return self._write(doc.post_id, source, doc.order)

    def retract(self, post_id: str, fence: int) -> bool:
        """Leave a tombstone at ``fence``: the post is found no more, and no write at an
        older fence brings it back."""
        check_fence(post_id, fence)
        self._ensure_index()
        source = {
            "post_id": post_id,
            "version": 0,
            "author_id": "",
            "title": "",
            "body": "",
            "tags": [],
            "published_at": None,
            "retracted": True,
        }
        return self._write(post_id, source, fence)

    def _write(self, post_id: str, source: dict, fence: int) -> bool:
        from elasticsearch import ConflictError

        with self._unavailable_on_failure(f"index post {post_id}"):
            try:
                self._es.index(
                    index=self.index,
                    id=post_id,
                    document=source,
                    version=fence,
                    version_type="external",
                )
            except ConflictError:
                return False  # this fence or a newer one is already written
        return True

    def get(self, post_id: str) -> PostDocument | None:
        from elasticsearch import NotFoundError

        self._ensure_index()
        with self._unavailable_on_failure(f"get post {post_id}"):
            try:
                found = self._es.get(index=self.index, id=post_id)
            except NotFoundError:
                return None
        src: dict[str, Any] = found["_source"]
        if src.get("retracted"):
            return None
        return PostDocument(
            post_id=post_id,
            # The post's own version: the document's _version is the fence.
            version=int(src["version"]),
            author_id=src["author_id"],
            title=src["title"],
            body=src["body"],
            tags=list(src.get("tags") or []),
            published_at=src.get("published_at"),
            fence=int(found["_version"]),
        )

    def search(self, query: str, limit: int = 20) -> list[str]:
        from elasticsearch import BadRequestError

        query = clip_query(query)
        if not query.strip() or limit <= 0:
            return []
        self._ensure_index()
        # multi_match analyzes the text as plain words: no query syntax for users to break.
        body = {
            "bool": {
                "must": {"multi_match": {"query": query, "fields": SEARCH_FIELDS}},
                "must_not": {"term": {"retracted": True}},
            }
        }
        with self._unavailable_on_failure("search"):
            try:
                found = self._es.search(
                    index=self.index,
                    query=body,
                    size=limit,
                    source=False,
                    sort=["_score", {"post_id": "asc"}],
                    track_total_hits=False,
                )
            except BadRequestError:
                return []  # e.g. too many clauses from a pathological query
        return [hit["_id"] for hit in found["hits"]["hits"]]

    def refresh(self) -> None:
        self._ensure_index()
        with self._unavailable_on_failure("refresh"):
            self._es.indices.refresh(index=self.index)

    def ping(self) -> bool:
        # Not HEAD / (the client's ping): that route lives in the rest-root module, which
        # minimal distributions such as the integ-test zip do not ship.
        try:
            health = self._es.cluster.health()
            return health["status"] in ("green", "yellow")
        except Exception:  # noqa: BLE001 - ping answers a yes/no question
            return False

    def close(self) -> None:
        self._es.close()
