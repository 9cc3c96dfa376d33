"""The follower graph under the API and the command line: follow, unfollow, read a page,
import JSON lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator

from pydantic import Field
from sqlalchemy.engine import Engine

from spool.db import followers as graph
from spool.service.views import View

# A page of followers read through the API; the fan-out reads its own, larger pages.
DEFAULT_PAGE = 100
MAX_PAGE = 1_000
# An import line: two ids of at most FOLLOWER_ID_MAX characters and their JSON fit easily;
# a longer line is refused before it is parsed, so a body without newlines holds no memory.
IMPORT_LINE_MAX = 4_096


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


def parse_follow_line(line: str, number: int) -> tuple[str, str] | None:
    """(author_id, follower_id) of one JSON line ``{"author_id": …, "follower_id": …}``, or
    None for a blank line. Raises InvalidFollow naming the line and the field."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise InvalidFollow("line", f"is not JSON ({exc.args[0]})", number) from None
    if not isinstance(record, dict):
        raise InvalidFollow("line", "must be a JSON object", number)
    unknown = sorted(set(record) - {"author_id", "follower_id"})
    if unknown:
        raise InvalidFollow(unknown[0], "is not a known field", number)
    return (
        check_id(record.get("author_id"), "author_id", number),
        check_id(record.get("follower_id"), "follower_id", number),
    )


def parse_follow_lines(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """The follow of each line (blank lines are skipped); InvalidFollow at the first bad one."""
    for number, line in enumerate(lines, start=1):
        edge = parse_follow_line(line, number)
        if edge is not None:
            yield edge


class FollowImportResult(View):
    lines: int = Field(description="lines read, blank ones included")
    follows: int = Field(description="follows the lines named (each stored now)")
    created: int = Field(description="of those, follows that were new")


class FollowImport:
    """An import of JSON lines over HTTP, fed as the body's bytes arrive and stored
    ``IMPORT_CHUNK`` follows per transaction, so a body of any size takes one chunk's
    memory. At a bad line the follows before it are stored first, then InvalidFollow names
    the line: nothing already accepted is lost, and sending the rest again is harmless
    (stored follows are skipped)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lines = 0
        self.stored = 0
        self.created = 0
        self._partial = b""
        self._pending: list[tuple[str, str]] = []

    async def feed(self, data: bytes) -> None:
        *complete, self._partial = (self._partial + data).split(b"\n")
        try:
            for raw in complete:
                await self._line(raw)
            if len(self._partial) > IMPORT_LINE_MAX:
                raise InvalidFollow("line", f"is over {IMPORT_LINE_MAX} bytes", self.lines + 1)
        except InvalidFollow:
            await self._flush()
            raise

    async def finish(self) -> FollowImportResult:
        try:
            if self._partial:
                await self._line(self._partial)
                self._partial = b""
        finally:
            await self._flush()
        return FollowImportResult(lines=self.lines, follows=self.stored, created=self.created)

    async def _line(self, raw: bytes) -> None:
        self.lines += 1
        if len(raw) > IMPORT_LINE_MAX:
            raise InvalidFollow("line", f"is over {IMPORT_LINE_MAX} bytes", self.lines)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidFollow("line", "is not UTF-8", self.lines) from None
        edge = parse_follow_line(text, self.lines)
        if edge is not None:
            self._pending.append(edge)
            if len(self._pending) >= graph.IMPORT_CHUNK:
                await self._flush()

    async def _flush(self) -> None:
        if self._pending:
            chunk, self._pending = self._pending, []
            self.created += await asyncio.to_thread(graph.import_follows, self.engine, chunk)
            self.stored += len(chunk)


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
