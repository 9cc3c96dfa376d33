"""What every video activity class shares: the heartbeat, the step's scratch folder, the
refusal of bad input, and the result of a rendition a step made."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spool import scratch
from spool.config import Settings
from spool.media import rates
from spool.models.common import INVALID_VIDEO
from spool.models.video import ProbeResult, RenditionResult

HEARTBEAT_EVERY_SECONDS = 1.0


def invalid(message: str) -> ApplicationError:
    """Bad input (rule 3): never retried, and said so a person can act on it. The message
    names the step that refused it (its activity id, ``probe: …``): the Temporal UI shows
    an activity's failure by its message."""
    step = activity.info().activity_id if activity.in_activity() else ""
    if step and not message.startswith(f"{step}: "):
        message = f"{step}: {message}"
    return ApplicationError(message, type=INVALID_VIDEO, non_retryable=True)


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[Callable[[float], None]]:
    """Heartbeat every second with the latest percent; yields the setter.

    Heartbeats are what deliver a cancel to an async activity (as CancelledError) and what lets
    the server notice a dead worker within the heartbeat timeout.
    """
    state = {"percent": 0.0}

    def set_percent(percent: float) -> None:
        state["percent"] = round(float(percent), 1)

    async def beat() -> None:
        while True:
            activity.heartbeat({"percent": state["percent"]})
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield set_percent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def scratch_dir() -> AsyncIterator[Path]:
    """The step's own scratch folder, removed when it ends (rule 8)."""
    path = await asyncio.to_thread(scratch.new_dir, "spool-video-")
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


def video_kbps(ladder: dict[int, int], height: int) -> int:
    """A rendition's video bit rate: its rung's, or for an off-ladder height the nearest
    rung's, scaled by pixel count."""
    if ladder.get(height):
        return ladder[height]
    rung = min(ladder, key=lambda h: abs(h - height))
    return max(200, int(ladder[rung] * (height / rung) ** 2))


def rendition_rate(settings: Settings, height: int, probe: ProbeResult) -> tuple[int, float | None]:
    """A rendition's (kbit/s, crf): under constant quality, the ceiling the ladder and the
    source allow and the rung's CRF (spool/media/rates.py); with the fixed ladder, its rate
    and no crf."""
    ladder = video_kbps(settings.bitrate_ladder, height)
    if settings.rate_control == "ladder":
        return ladder, None
    crf = rates.rung_crf(ladder, height, probe, settings.x264_crf, settings.x264_crf_source_bound)
    return rates.rung_ceiling_kbps(ladder, height, probe), crf


def rendition_result(
    name: str, key: str, info: ProbeResult, duration: float, started: float
) -> RenditionResult:
    """A stored rendition as the job records it: ``info`` is the made file's probe,
    ``duration`` the source's (used when the file's own is unknown), ``started`` the step's
    start on the monotonic clock."""
    duration = info.duration or duration
    return RenditionResult(
        name=name,
        key=key,
        width=info.width,
        height=info.height,
        size_bytes=info.size_bytes,
        bitrate_kbps=int(info.size_bytes * 8 / duration / 1000) if duration else 0,
        duration=duration,
        seconds_taken=round(time.monotonic() - started, 2),
    )


def thumb_number(path: Path, default: int) -> int:
    """The number in a thumbnail's name (``thumb-000012.jpg``, or its key ``…/000012.jpg``:
    12): its time is that many intervals from the start."""
    digits = re.search(r"(\d+)$", path.stem)
    return int(digits[1]) if digits else default
