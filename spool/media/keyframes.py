"""The source's own keyframes, for the plan to cut chunks on (spool/models/chunks.py,
``snap_to_keyframes``): a chunk starting on one decodes nothing it throws away."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from spool.media import tools


def keyframes_args(src: str | Path) -> list[str]:
    """ffprobe listing the main video stream's packets (time and flags) and the container's
    start, as csv: it reads packet flags only, decoding nothing."""
    return tools.ffprobe_argv(
        src,
        [
            "-select_streams",
            "V:0",
            "-show_entries",
            "format=start_time:packet=pts_time,flags",
            "-of",
            "csv",
        ],
    )


async def keyframe_times(src: Path, limits: tools.Limits) -> list[float] | None:
    """The main video stream's keyframes, in seconds on the time line a chunk's input seek
    uses (from the container's start), in order; None when ffprobe cannot list them."""
    try:
        listing = await tools.run_tool(keyframes_args(src), limits)
    except tools.MediaError:
        return None
    return parse_keyframes(listing)


def parse_keyframes(listing: str) -> list[float]:
    """ffprobe's csv of the packets (``packet,pts_time,flags``) and the container's start
    (``format,start_time``) → sorted keyframe seconds from that start; packets without a
    time or a keyframe flag are skipped."""
    origin = 0.0
    keyframes: list[str] = []
    for line in listing.splitlines():
        section, _, fields = line.strip().partition(",")
        if section == "format":
            with contextlib.suppress(ValueError):  # N/A: the container names no start
                origin = float(fields.split(",", 1)[0])
        elif section == "packet":
            pts, _, flags = fields.partition(",")
            if flags.startswith("K"):
                keyframes.append(pts)
    times: set[float] = set()
    for pts in keyframes:
        try:
            seconds = float(pts) - origin
        except ValueError:
            continue  # N/A: a packet without a presentation time
        if math.isfinite(seconds) and seconds >= 0:
            times.add(round(seconds, 6))
    return sorted(times)
