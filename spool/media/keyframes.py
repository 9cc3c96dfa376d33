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


class TooManyPackets(Exception):
    """The video stream holds more packets than ``limit``: more frames than its duration
    allows at the frame-rate limit, whatever its header says its rate is."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} video packets")
        self.limit = limit


# Keyframes closer than this to the last one kept are dropped while listing: an intra-only
# source (every frame a keyframe) keeps two a second instead of every frame, and a chunk
# boundary snapped to one of them (models/chunks.py) is still on a keyframe.
KEYFRAME_GAP_SECONDS = 0.5


class KeyframeListing:
    """ffprobe's csv of the packets (``packet,pts_time,flags``) and the container's start
    (``format,start_time``, listed last), taken a line at a time: only keyframes are kept, at
    most one per KEYFRAME_GAP_SECONDS, and ``take`` asks to stop past ``max_packets`` packets
    (None: no bound)."""

    def __init__(self, max_packets: int | None = None) -> None:
        self.max_packets = max_packets
        self.packets = 0
        self.over = False
        self.origin = 0.0
        self.keyframes: list[float] = []

    def take(self, line: str) -> bool:
        section, _, fields = line.strip().partition(",")
        if section == "format":
            with contextlib.suppress(ValueError):  # N/A: the container names no start
                self.origin = float(fields.split(",", 1)[0])
        elif section == "packet":
            self.packets += 1
            if self.max_packets is not None and self.packets > self.max_packets:
                self.over = True
                return False
            pts, _, flags = fields.partition(",")
            if flags.startswith("K"):
                self._keep(pts)
        return True

    def _keep(self, pts: str) -> None:
        try:
            seconds = float(pts)
        except ValueError:
            return  # N/A: a packet without a presentation time
        if math.isfinite(seconds) and not (
            self.keyframes and abs(seconds - self.keyframes[-1]) < KEYFRAME_GAP_SECONDS
        ):
            self.keyframes.append(seconds)

    def times(self) -> list[float]:
        """Sorted keyframe seconds from the container's start."""
        times = {round(pts - self.origin, 6) for pts in self.keyframes}
        return sorted(t for t in times if t >= 0)


async def keyframe_times(
    src: Path, limits: tools.Limits, max_packets: int | None = None
) -> list[float] | None:
    """The main video stream's keyframes, in seconds on the time line a chunk's input seek
    uses (from the container's start), in order; None when ffprobe cannot list them. The
    listing is read a line at a time; TooManyPackets past ``max_packets`` (stopped there)."""
    listing = KeyframeListing(max_packets)
    try:
        await tools.run_tool(keyframes_args(src), limits, on_line=listing.take)
    except tools.MediaError:
        return None
    if listing.over and max_packets is not None:
        raise TooManyPackets(max_packets)
    return listing.times()


def parse_keyframes(listing: str) -> list[float]:
    """``KeyframeListing`` of a whole listing at once."""
    parsed = KeyframeListing()
    for line in listing.splitlines():
        parsed.take(line)
    return parsed.times()
