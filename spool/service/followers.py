"""The follower graph under the API and the command line: follow, unfollow, read a page,
import JSON lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator

from sqlalchemy.engine import Engine

from spool.db import followers as graph
from spool.service.views import View

# A page of followers read through the API; the fan-out reads its own, larger pages.
DEFAULT_PAGE = 100
MAX_PAGE = 1_000


class FollowerEdge(View):
    author_id: str
    follower_id: str
    created: bool = False  # PUT: the edge is new (a repeat answers False)


class FollowerRemoved(View):
    author_id: str
    follower_id: str
    removed: bool = True


class FollowersPage(View):
    """Followers in id order; ``next_cursor`` (absent on the last page) asks for the next."""

    author_id: str
    followers: list[str]
    next_cursor: str | None = None


class InvalidFollow(ValueError):
    """A follower id, author id or import line that cannot be stored; ``field`` names it."""

    def __init__(self, field: str, message: str, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{field}: {message}")
        self.field = field
        self.line = line


class UnknownAuthor(LookupError):
    pass


def check_id(value: object, field: str, line: int | None = None) -> str:
    """``value`` when it can be an author or follower id (what a post's ids may be, and
    what the columns hold), else InvalidFollow naming ``field``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidFollow(field, "is required and must be a non-empty string", line)
    if len(value) > graph.FOLLOWER_ID_MAX:
        raise InvalidFollow(field, f"must be at most {graph.FOLLOWER_ID_MAX} characters", line)
    if any(ch.isspace() or ch in "/\\" for ch in value):
        raise InvalidFollow(field, "must not contain whitespace or slashes", line)
    return value


def parse_follow_lines(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(author_id, follower_id) of each JSON line ``{"author_id": …, "follower_id": …}``;
    blank lines are skipped. Raises InvalidFollow naming the line and the field."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InvalidFollow("line", f"is not JSON ({exc.args[0]})", number) from None
        if not isinstance(record, dict):
            raise InvalidFollow("line", "must be a JSON object", number)
        unknown = sorted(set(record) - {"author_id", "follower_id"})
        if unknown:
            raise InvalidFollow(unknown[0], "is not a known field", number)
        yield (
            check_id(record.get("author_id"), "author_id", number),
            check_id(record.get("follower_id"), "follower_id", number),
        )


class FollowerService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def follow(self, author_id: str, follower_id: str) -> FollowerEdge:
        check_id(author_id, "author_id")
        check_id(follower_id, "follower_id")
        created = await asyncio.to_thread(graph.follow, self.engine, author_id, follower_id)
        return FollowerEdge(author_id=author_id, follower_id=follower_id, created=created)

    async def unfollow(self, author_id: str, follower_id: str) -> bool:
        return await asyncio.to_thread(graph.unfollow, self.engine, author_id, follower_id)

    async def page(self, author_id: str, cursor: str | None, limit: int) -> FollowersPage:
        """One page after ``cursor``; UnknownAuthor for an author nobody follows and who
        has published nothing."""
        found = await asyncio.to_thread(self._page, author_id, cursor, limit)
        if found is None:
            raise UnknownAuthor(author_id)
        more = len(found) > limit
        found = found[:limit]
        return FollowersPage(
            author_id=author_id, followers=found, next_cursor=found[-1] if more else None
        )

    def _page(self, author_id: str, cursor: str | None, limit: int) -> list[str] | None:
        # One more than asked: whether there is a next page, without a count.
        found = graph.followers_page(self.engine, author_id, cursor, limit + 1)
        if not found and not graph.author_exists(self.engine, author_id):
            return None
        return found
