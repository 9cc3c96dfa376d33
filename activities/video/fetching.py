"""``video.fetch_source``: a video handed over as a URL, fetched into the store under its
source key (spool/fetch.py does the HTTP; docs/pipelines.md, "Ingest from a URL")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from temporalio import activity

from activities.video.common import HEARTBEAT_EVERY_SECONDS, invalid
from spool import fetch, scratch
from spool.config import Settings
from spool.models.video import FetchSourceInput, FetchSourceResult
from spool.storage.transfers import Transfers


class FetchActivities:
    """``video.fetch_source``; built once per worker."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.settings = settings
        self.files = files

    @activity.defn(name="video.fetch_source")
    async def fetch_source(self, inp: FetchSourceInput) -> FetchSourceResult:
        """The URL's body stored under ``inp.source_key``. The partial file is kept in this
        process's scratch root between attempts, so a retry on the same worker resumes from
        the bytes its last heartbeat reported; on another worker it starts over."""
        part = scratch.scratch_root() / f"fetch-{inp.video_id}.part"
        start = await asyncio.to_thread(_resumable_bytes, part, _heartbeat_bytes())
        async with _heartbeating(start) as on_bytes:
            try:
                got = await fetch.fetch_to_file(
                    self.settings, inp.source_url, part, start=start, on_bytes=on_bytes
                )
            except fetch.FetchRefused as exc:
                await asyncio.to_thread(part.unlink, True)
                raise invalid(f"The video could not be fetched from its URL: {exc}.") from None
            except asyncio.CancelledError:  # the job is cancelled: no retry will resume it
                await asyncio.shield(asyncio.to_thread(part.unlink, True))
                raise
            await self.files.put_file(part, inp.source_key)
        await asyncio.to_thread(part.unlink, True)
        return FetchSourceResult(got.bytes, fetch.shown(inp.source_url), got.content_type)


def _heartbeat_bytes() -> int:
    """The bytes the last attempt had written, from its heartbeat (0 on a first attempt)."""
    details = activity.info().heartbeat_details
    if not details or not isinstance(details[0], dict):
        return 0
    got = details[0].get("bytes", 0)
    return got if isinstance(got, int) and got >= 0 else 0


def _resumable_bytes(part: Path, reported: int) -> int:
    """Where to resume: the reported bytes when this worker still holds them, else 0."""
    try:
        held = part.stat().st_size
    except FileNotFoundError:
        return 0
    return reported if 0 < reported <= held else 0


@contextlib.asynccontextmanager
async def _heartbeating(start: int) -> AsyncIterator[Callable[[int], None]]:
    """Heartbeat from the first second with the bytes fetched (the details a retry resumes
    from; no percent, the length is often unknown); yields the setter of the bytes."""
    state = {"bytes": start}

    def set_bytes(n: int) -> None:
        state["bytes"] = n

    async def beat() -> None:
        while True:
            activity.heartbeat({"bytes": state["bytes"]})
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield set_bytes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
