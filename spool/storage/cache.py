"""A worker process's local copies of the objects its steps read again and again.

Every chunk of a video decodes a slice of the same source, and one media worker runs many of
them (and the AAC track, the poster, the captions' audio): without a cache each step
downloads the whole source again. Here the first step to ask downloads it once; steps asking
meanwhile wait for that download, later ones find the file.

A copy is known by the object's key *and* its validator (``ObjectInfo.etag``), so bytes
replaced under the same key are downloaded again, never served stale. Copies live in a
folder the caller names (a worker's scratch root: swept at the next start after a crash),
count against ``max_bytes``, and the least recently used ones that no step is reading are
deleted to make room. A copy no step has read for ``max_idle_seconds`` is deleted too, also
on a host that receives no more work: an upload does not linger on a worker's disk. An
object larger than the whole budget is not cached: ``fits`` says so, and the caller
downloads it into the step's own folder as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ObjectCache"]

Download = Callable[[Path], Awaitable[object]]


@dataclass
class _Copy:
    path: Path
    size: int
    readers: int = 0
    last_used: int = 0  # order of use, for least-recently-used eviction
    idle_since: float = 0.0  # clock time the last reader let go


class ObjectCache:
    """Local copies of objects, shared by the steps of one process (one event loop)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        directory: Callable[[], Path],
        max_idle_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_idle_seconds = max_idle_seconds
        self._clock = clock
        self._directory = directory
        self._folder: Path | None = None
        self._copies: dict[tuple[str, str], _Copy] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._tick = itertools.count(1)
        # The one pending expire_idle, and the loop it waits on (a test's may be closed).
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_loop: asyncio.AbstractEventLoop | None = None
        self.downloads = 0  # how many objects were fetched: what tests and logs count

    def fits(self, size: int) -> bool:
        return 0 < size <= self.max_bytes

    @contextlib.asynccontextmanager
    async def open(self, key: str, etag: str, download: Download) -> AsyncIterator[Path]:
        """The local copy of ``key`` at version ``etag``, downloaded with ``download(path)``
        if this process has none. Read it inside the ``async with``: it is not deleted
        while any step holds it; never write to it."""
        ident = (key, etag)
        copy = await self._copy(ident, download)
        copy.readers += 1
        copy.last_used = next(self._tick)
        try:
            yield copy.path
        finally:
            copy.readers -= 1
            copy.idle_since = self._clock()
            self._make_room(0)
            self._expire_later()

    def expire_idle(self) -> None:
        """Delete the copies no step has read for ``max_idle_seconds``."""
        if self.max_idle_seconds is None:
            return
        now = self._clock()
        for ident, copy in list(self._copies.items()):
            if copy.readers == 0 and now - copy.idle_since >= self.max_idle_seconds:
                del self._copies[ident]
                copy.path.unlink(missing_ok=True)

    def _expire_later(self, delay: float | None = None) -> None:
        """A timer on the event loop, so an idle host deletes its copies without waiting
        for another step to come along. One at a time: a copy let go while it is pending is
        looked at when it fires, which then waits for the next copy due."""
        loop = asyncio.get_running_loop()
        if self.max_idle_seconds is None or (
            self._expiry is not None and self._expiry_loop is loop
        ):
            return
        self._expiry_loop = loop
        self._expiry = loop.call_later(
            self.max_idle_seconds if delay is None else delay, self._expire_due
        )

    def _expire_due(self) -> None:
        self._expiry = None
        self.expire_idle()
        # Copies being read get a timer when let go; the idle ones left are not due yet.
        idle_since = [copy.idle_since for copy in self._copies.values() if copy.readers == 0]
        if idle_since:
            assert self.max_idle_seconds is not None
            due = min(idle_since) + self.max_idle_seconds - self._clock()
            self._expire_later(max(due, 0.0))

    def held_bytes(self) -> int:
        return sum(copy.size for copy in self._copies.values())

    async def _copy(self, ident: tuple[str, str], download: Download) -> _Copy:
        while True:
            copy = self._copies.get(ident)
            if copy is not None:
                return copy
            loading = self._loading.get(ident)
            if loading is None:
                # The download belongs to the cache, not to the step that started it: a
                # step cancelled meanwhile leaves it running for the steps still waiting.
                loading = asyncio.ensure_future(self._download(ident, download))
                self._loading[ident] = loading
                loading.add_done_callback(lambda _done: self._loading.pop(ident, None))
            await asyncio.shield(loading)
            # Registered by the download; looked up again in case it was evicted meanwhile.

    async def _download(self, ident: tuple[str, str], download: Download) -> None:
        folder = self._ensure_folder()
        name = uuid.uuid4().hex
        part, final = folder / f"{name}.part", folder / name
        try:
            await download(part)
            part.rename(final)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        size = final.stat().st_size
        self.downloads += 1
        self._make_room(size)
        self._copies[ident] = _Copy(
            final, size, last_used=next(self._tick), idle_since=self._clock()
        )
        self._expire_later()  # in case no step ever reads it (they all were cancelled)

    def _make_room(self, incoming: int) -> None:
        """Delete the least recently used copies no step is reading until ``incoming`` more
        bytes fit in the budget (or nothing more can go)."""
        held = self.held_bytes()
        idle = sorted((c.last_used, ident) for ident, c in self._copies.items() if c.readers == 0)
        for _used, ident in idle:
            if held + incoming <= self.max_bytes:
                return
            copy = self._copies.pop(ident)
            copy.path.unlink(missing_ok=True)
            held -= copy.size

    def _ensure_folder(self) -> Path:
        if self._folder is None or not self._folder.is_dir():
            self._folder = self._directory()
            self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder
