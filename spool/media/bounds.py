"""What a header can hide: an upload's bounds beyond its display size and duration.

The probe's display size and duration are what a person sees; decoders pay for more. A
picture is decoded at its stored and coded size, whatever its sample aspect ratio shows; every
frame costs, whatever rate is announced; and a container's duration is only a claim until the
streams confirm it. ``probe_upload`` checks all three before any heavy step (docs/security.md,
"Limits, and what each one protects").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spool.media import probe, tools
from spool.models.video import ProbeResult

# Coded sizes are padded to whole macroblocks or coding units (1080 lines code as 1088).
CODED_PADDING = 64
# A container's duration is confirmed when no packet ends more than this past it (plus 1 %).
DURATION_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class UploadBounds:
    """The limits an upload is held to before any heavy work (SPOOL_MAX_*)."""

    max_width: int
    max_height: int
    max_duration: float
    max_frame_rate: float

    @classmethod
    def from_settings(cls, settings: Any) -> UploadBounds:
        return cls(
            settings.max_width,
            settings.max_height,
            settings.max_duration_seconds,
            settings.max_frame_rate,
        )


class UploadRefused(Exception):
    """An upload outside its bounds; the message says why, for a person."""


def stored_size_problem(video: dict, bounds: UploadBounds) -> str | None:
    """The picture as decoders hold it, not as it is shown: its stored size (before the sample
    aspect ratio stretches it: a 24000x4000 MJPEG of 1:8 pixels shows as 3000x4000) and its
    coded size, within the limits in either orientation and within their area."""
    long_limit = max(bounds.max_width, bounds.max_height)
    short_limit = min(bounds.max_width, bounds.max_height)
    for kind, w, h, pad in (
        ("stored", video.get("width"), video.get("height"), 0),
        ("coded", video.get("coded_width"), video.get("coded_height"), CODED_PADDING),
    ):
        width, height = int(w or 0), int(h or 0)
        long_side, short_side = max(width, height), min(width, height)
        if (
            long_side > long_limit + pad
            or short_side > short_limit + pad
            or width * height > (long_limit + pad) * (short_limit + pad)
        ):
            return (
                f"The video's pictures are {kind} as {width}x{height} pixels, whatever size "
                f"they are shown at; the limit is {bounds.max_width}x{bounds.max_height} "
                "(either orientation)."
            )
    return None


def frame_rate_problem(fps: float | None, bounds: UploadBounds) -> str | None:
    if fps is not None and fps > bounds.max_frame_rate:
        return (
            f"The video has {fps:g} frames a second; the limit is "
            f"{bounds.max_frame_rate:g} (SPOOL_MAX_FRAME_RATE)."
        )
    return None


def packets_around_args(path: str | Path, start: float, end: float) -> list[str]:
    """ffprobe listing every packet (all streams) between two absolute times: a seek to the
    keyframe before ``start``, then packets up to ``end``."""
    return tools.ffprobe_argv(
        path,
        [
            "-read_intervals",
            f"{start:.3f}%{end:.3f}",
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv",
        ],
    )


async def streams_outlast(
    path: str | Path, claimed: float, origin: float, limits: tools.Limits
) -> float | None:
    """Where the streams go on to, when a packet ends past ``claimed`` seconds (plus slack)
    after ``origin``; None when they end where the file says. Packets are read from a second
    before the claimed end and the listing is stopped at the first one past it, so a header
    claiming 2 s over ten minutes of audio costs a few packets, however long the rest."""
    slack = DURATION_SLACK_SECONDS + 0.01 * claimed
    found: list[float] = []

    def take(line: str) -> bool:
        fields = line.split(",")
        try:
            end = float(fields[1]) + (float(fields[2]) if fields[2] != "N/A" else 0.0)
        except (IndexError, ValueError):
            return True  # not a packet line, or a packet without a time
        if end - origin > claimed + slack:
            found.append(end - origin)
            return False
        return True

    start, end = origin + max(0.0, claimed - 1.0), origin + claimed + 2 * slack
    await tools.run_tool(packets_around_args(path, start, end), limits, on_line=take)
    return found[0] if found else None


async def probe_upload(
    path: str | Path,
    limits: tools.Limits,
    bounds: UploadBounds,
    check: Callable[[ProbeResult], None] = lambda _result: None,
) -> ProbeResult:
    """The probe, then ``check`` (the caller's refusals of what the result shows: its display
    size, its duration), then UploadRefused for what they do not show: a stored or coded
    picture past the limits, a frame rate past its limit, and a duration the streams do not
    confirm."""
    data = await probe.probe_data(path, limits)
    result = probe.parse_probe(data, size_bytes=tools.file_size(path))
    check(result)
    video = probe.main_video(data)
    problem = (video and stored_size_problem(video, bounds)) or frame_rate_problem(
        result.fps, bounds
    )
    if problem:
        raise UploadRefused(problem)
    if 0 < result.duration <= bounds.max_duration:
        start_time = (data.get("format") or {}).get("start_time")
        outlast = await streams_outlast(
            path, result.duration, probe.positive_seconds(start_time), limits
        )
        if outlast is not None:
            raise UploadRefused(
                f"The file says it is {result.duration:.1f} s long, but its streams go on "
                f"past {outlast:.1f} s: its header does not match its data."
            )
    return result
