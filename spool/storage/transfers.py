"""How a step moves its files between the object store and its own scratch folder (rule 8):
several transfers at once, an upload's groups in order (an HLS playlist after its segments),
nothing new after a cancel, and an outage of the store waited out rather than failed (rule 9).

One ``Transfers`` per worker process: its cache of uploads (``cache.py``) is how the chunks,
audio track, poster and captions' audio a worker makes of one video download it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from spool import scratch
from spool.config import Settings
from spool.storage import ObjectInfo, ObjectStorage, StorageUnavailable, open_storage
from spool.storage.cache import ObjectCache

__all__ = ["SOURCE_CACHE_PREFIX", "TRANSFERS", "Transfers"]

log = logging.getLogger("spool.storage.transfers")
P = ParamSpec("P")
T = TypeVar("T")

# Object-store transfers one step runs at once (chunk files, segments, thumbnails).
TRANSFERS = 4
# The folder, under a worker's scratch root, of its cache of uploads (spool/storage/cache.py).
SOURCE_CACHE_PREFIX = "spool-sources-"
# How an outage is waited out: the first retry after this long, doubling up to the cap.
FIRST_RETRY_SECONDS = 0.5
LONGEST_RETRY_SECONDS = 10.0


class Transfers:
    """A worker's storage client, its cache of uploads, and the way its steps use them."""

    def __init__(
        self, storage: ObjectStorage, sources: ObjectCache, *, outage_seconds: float
    ) -> None:
        self.storage = storage
        self.sources = sources
        self.outage_seconds = outage_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> Transfers:
        sources = ObjectCache(
            max_bytes=settings.source_cache_bytes,
            directory=lambda: scratch.new_dir(SOURCE_CACHE_PREFIX),
            max_idle_seconds=settings.source_cache_idle_seconds,
        )
        return cls(open_storage(settings), sources, outage_seconds=settings.storage_outage_seconds)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A storage call, in a thread, that waits out an outage of the store (restart,
        network blip) instead of spending the step's attempts on it: the step's heartbeats go
        on meanwhile, so a cancel still arrives. Past ``outage_seconds`` it raises
        StorageUnavailable, which the step retries like any other failure."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outage_seconds
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except StorageUnavailable as exc:
                if loop.time() + delay > deadline:
                    raise StorageUnavailable(f"object storage unavailable: {exc}") from None
                log.warning("object storage unavailable, retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LONGEST_RETRY_SECONDS)

    async def fetch(self, key: str, dest: Path) -> Path:
        """The object under ``key`` as the local file ``dest``."""
        await self.call(self.storage.get_to, key, dest)
        return dest

    @contextlib.asynccontextmanager
    async def source(
        self, key: str, tmp: Path, info: ObjectInfo | None = None
    ) -> AsyncIterator[Path]:
        """The upload, from this process's cache of sources: the chunks, audio track, poster
        and captions' audio a worker makes of one video download it once between them. One
        larger than the whole cache (SPOOL_SOURCE_CACHE_BYTES) is fetched into ``tmp``.
        ``info``: the object's stat, when the caller has just read it."""
        info = info or await self.call(self.storage.stat, key)
        if not self.sources.fits(info.size):
            yield await self.fetch(key, tmp / "source")
            return
        async with self.sources.open(key, info.etag, lambda dest: self.fetch(key, dest)) as path:
            yield path

    async def put_file(self, path: Path, key: str) -> None:
        """The local file ``path`` stored under ``key``, whole or not at all."""
        await self.call(self.storage.put_file, path, key)

    async def put_bytes(self, data: bytes, key: str) -> None:
        await self.call(self.storage.put_bytes, data, key)

    async def fetch_all(self, pairs: list[tuple[str, Path]]) -> list[Path]:
        """Objects to local files (key, destination), TRANSFERS at a time, in order."""
        return await _run_all([functools.partial(self.fetch, key, dest) for key, dest in pairs])

    async def put_all(self, *groups: list[tuple[Path, str]]) -> None:
        """Store files under their keys, TRANSFERS at a time, each group once the one before
        it is stored (an HLS playlist after its segments). A cancel arriving meanwhile waits
        for the uploads in flight to end (a thread cannot be interrupted) and starts no more:
        nothing lands under a key once the step has acknowledged its cancel, so the job's
        final record can clear work/."""
        stop = asyncio.Event()

        async def put_groups() -> None:
            for group in groups:  # once stopped, _run_all starts none of a group's calls
                await _run_all(
                    [functools.partial(self.put_file, path, key) for path, key in group],
                    stop=stop,
                )

        upload = asyncio.ensure_future(put_groups())
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            stop.set()  # transfers not started yet are skipped; running ones end
            with contextlib.suppress(Exception):
                await upload
            raise


async def _run_all(
    calls: list[Callable[[], Awaitable[Any]]], *, stop: asyncio.Event | None = None
) -> list[Any]:
    """Run the calls TRANSFERS at a time, results in order; once ``stop`` is set, calls not
    started yet are skipped (None). Every call has ended when this returns or raises (the
    first error, once all are done): an object store is far from the disk, so one transfer
    at a time left most of a step's I/O time waiting on round trips."""
    gate = asyncio.Semaphore(TRANSFERS)

    async def run(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            if stop is not None and stop.is_set():
                return None
            return await call()

    results = await asyncio.gather(*(run(call) for call in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
