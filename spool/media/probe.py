"""The probe: what an upload is (size, duration, streams), read by ffprobe before any heavy
step, and what a person should hear when it is not a video Spool reads.

Every ffprobe here reads a hostile upload through ``tools`` (docs/ARCHITECTURE.md,
"Untrusted input"); limits on what the probe finds are the probe activity's.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from spool.media import tools
from spool.models.video import ProbeResult

# Only what parse_probe reads: an upload's tags (megabytes of them, if it likes) never reach
# Spool's memory or the output pipe.
PROBE_ENTRIES = ":".join(
    [
        "format=format_name,duration,bit_rate,start_time",
        "stream=index,codec_type,codec_name,width,height,coded_width,coded_height,"
        "sample_aspect_ratio,duration,avg_frame_rate,r_frame_rate,bit_rate",
        "stream_disposition=attached_pic",
        "stream_tags=rotate",
        "stream_side_data=rotation",
    ]
)
# A header can declare any picture size; decoding a few packets of the main video stream
# proves there are pictures behind it before any heavy step is started for them (a few, not
# one: a capture cut mid-GOP decodes nothing until its next keyframe).
FIRST_FRAMES_PACKETS = 16
# ffprobe reads headers and a few packets: far less than this, whatever the upload.
PROBE_TIMEOUT_SECONDS = 120


def probe_args(path: str | Path) -> list[str]:
    return tools.ffprobe_argv(path, ["-show_entries", PROBE_ENTRIES, "-of", "json"])


def first_frames_args(path: str | Path) -> list[str]:
    """ffprobe that decodes the first packets of the main video stream (``V``: not cover art)
    and prints the size of each picture it got."""
    return tools.ffprobe_argv(
        path,
        [
            "-select_streams",
            "V:0",
            "-read_intervals",
            f"%+#{FIRST_FRAMES_PACKETS}",
            "-show_entries",
            "frame=width,height",
            "-of",
            "json",
        ],
    )


async def probe_data(path: str | Path, limits: tools.Limits | None = None) -> dict:
    """What ffprobe says of a file (PROBE_ENTRIES), as parsed JSON."""
    limits = limits or tools.Limits(timeout_seconds=PROBE_TIMEOUT_SECONDS)
    return await tools.probe_json(probe_args(path), limits)


async def probe(path: str | Path, limits: tools.Limits | None = None) -> ProbeResult:
    return parse_probe(await probe_data(path, limits), size_bytes=tools.file_size(path))


async def decoded_frame_count(path: str | Path, limits: tools.Limits) -> int:
    """How many pictures the first packets of the main video stream decode to."""
    frames = (await tools.probe_json(first_frames_args(path), limits)).get("frames") or []
    return sum(1 for f in frames if int(f.get("width") or 0) > 0 < int(f.get("height") or 0))


# --- what the probe found ------------------------------------------------------------------


def main_video(data: dict) -> dict | None:
    """The probe's first video stream that is not cover art."""
    return next(
        (
            s
            for s in data.get("streams") or []
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )


def parse_probe(data: dict, size_bytes: int = 0) -> ProbeResult:
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    video = main_video(data)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _media_duration(fmt, [s for s in (video, audio) if s])
    width = int(video.get("width") or 0) if video else 0
    height = int(video.get("height") or 0) if video else 0
    if video and width:
        width = _display_width(video, width)
    rotation = _rotation(video) if video else 0
    if abs(rotation) % 180 == 90:
        width, height = height, width
    bit_rate = _bit_rate(fmt, duration, size_bytes)
    return ProbeResult(
        duration=duration,
        width=width,
        height=height,
        has_video=video is not None and width > 0 and height > 0,
        has_audio=audio is not None,
        format_name=str(fmt.get("format_name", "")),
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        rotation=rotation,
        fps=_fps(video) if video else None,
        bit_rate=bit_rate,
        size_bytes=size_bytes,
        video_bit_rate=_video_bit_rate(video, audio, bit_rate, size_bytes, duration),
    )


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            try:
                return int(float(side["rotation"]))
            except (TypeError, ValueError):
                return 0
    try:
        return -int((stream.get("tags") or {}).get("rotate", 0))
    except (TypeError, ValueError):
        return 0


def _fps(stream: dict) -> float | None:
    rate = stream.get("avg_frame_rate") or stream.get("r_frame_rate") or ""
    num, _, den = rate.partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else None
    except ValueError:
        return None


def positive_seconds(value: Any) -> float:
    """A time ffprobe reported, as seconds; 0 for none, a negative or a non-finite one."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _media_duration(fmt: dict, streams: list[dict]) -> float:
    """The longest stream's duration, else the container's. A stream's duration is counted
    from its own index of samples, while a container header may claim anything (an MP4 whose
    mvhd says 10 hours over 2 s of samples): the header is used only when streams say nothing
    (Matroska, WebM)."""
    from_streams = max((positive_seconds(s.get("duration")) for s in streams), default=0.0)
    return from_streams or positive_seconds(fmt.get("duration"))


def _bit_rate(fmt: dict, duration: float, size_bytes: int) -> int | None:
    """The container's overall bit rate, unless it was worked out from a duration the streams
    disprove (see _media_duration): then the file's size over the true duration."""
    claimed = positive_seconds(fmt.get("duration"))
    if size_bytes and duration and claimed and abs(claimed - duration) > 0.1 * duration:
        return round(size_bytes * 8 / duration)
    try:
        return int(fmt["bit_rate"]) if fmt.get("bit_rate") else None
    except ValueError:
        return None


def _video_bit_rate(
    video: dict | None, audio: dict | None, overall: int | None, size_bytes: int, duration: float
) -> int | None:
    """The video stream's bits/s: its own figure (MP4 and MOV count it from their sample
    sizes), else the whole file's less the audio's when that is known (Matroska and MPEG-TS
    state no stream rates). Never more than the whole file's, whatever a header claims."""
    if video is None:
        return None
    whole = [r for r in (overall, size_bytes * 8 / duration if size_bytes and duration else 0) if r]
    ceiling = min(whole) if whole else None
    own = _positive_int(video.get("bit_rate"))
    if own:
        return int(min(own, ceiling)) if ceiling else own
    if ceiling is None:
        return None
    return int(max(ceiling - (_positive_int((audio or {}).get("bit_rate")) or 0), ceiling / 2))


def _positive_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _display_width(stream: dict, width: int) -> int:
    """The width the picture is shown at: stored width × sample aspect ratio (DV, DVD and HDV
    store wide pictures in narrow, non-square pixels), kept even."""
    num, _, den = str(stream.get("sample_aspect_ratio") or "").partition(":")
    if not (num.isdigit() and den.isdigit()) or int(num) in (0, int(den)) or int(den) == 0:
        return width  # square pixels (1:1, or unknown: 0:1)
    return max(2, round(width * int(num) / int(den) / 2) * 2)


# --- why an upload was refused -------------------------------------------------------------

# Demuxers ffprobe recognises but the whitelist refuses, as a person would name the file.
REFUSED_FORMATS = {
    "png_pipe": "a PNG image",
    "jpeg_pipe": "a JPEG image",
    "gif": "a GIF image",
    "webp_pipe": "a WebP image",
    "bmp_pipe": "a BMP image",
    "tiff_pipe": "a TIFF image",
    "svg_pipe": "an SVG image",
    "image2": "an image",
    "hls": "an HLS playlist (.m3u8)",
    "concat": "an ffconcat playlist",
    "tty": "a text file",
    "srt": "a subtitle file",
    "webvtt": "a subtitle file",
    "ass": "a subtitle file",
}
# File signatures of common non-media uploads that no demuxer claims.
KNOWN_SIGNATURES = [
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
]
_WHITELIST_REFUSAL = re.compile(r"^\[(?P<demuxer>[\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist")
_LOG_PREFIX = re.compile(r"^(\[[^\]]* @ 0x[0-9a-f]+\] )|^(file:\S+: )")
ACCEPTED_CONTAINERS = "MP4, MOV, MKV, WebM, AVI or MPEG-TS"


def unreadable_reason(stderr: str, head: bytes) -> str:
    """What a person should hear when ffprobe could not open an upload: the kind of file it
    is when that is known (from the demuxer ffprobe recognised, else from the file's first
    bytes), never a path of Spool's."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    refused = next((m for m in map(_WHITELIST_REFUSAL.match, lines) if m), None)
    if refused:
        return _refused_format_reason(refused["demuxer"])
    if any("moov atom not found" in line for line in lines):
        return (
            "This file is not a video Spool can read yet: an incomplete MP4/MOV whose index "
            "(the moov atom) is missing, so it was probably cut off while uploading or "
            "recording. Upload the whole file."
        )
    kind = next((name for magic, name in KNOWN_SIGNATURES if head.startswith(magic)), None)
    if kind:
        return f"This file is {kind}, not a video. Upload an {ACCEPTED_CONTAINERS} file."
    return _damaged_reason(_LOG_PREFIX.sub("", lines[-1]) if lines else "no details")


def _refused_format_reason(demuxer: str) -> str:
    what = REFUSED_FORMATS.get(demuxer, f"in the {demuxer} format")
    if demuxer in ("hls", "concat"):
        return (
            f"This file is {what}, not a video: Spool never follows a playlist to "
            "other files or addresses. Upload the video itself as "
            f"{ACCEPTED_CONTAINERS}."
        )
    return f"This file is {what}, not a video Spool accepts. Upload an {ACCEPTED_CONTAINERS} file."


def _damaged_reason(detail: str) -> str:
    if detail == "End of file":
        return (
            "This file is not a video Spool can read: it ends before its own structure "
            "says it should, so it is damaged or was cut off while uploading. Upload the "
            f"whole file as {ACCEPTED_CONTAINERS}."
        )
    if detail.startswith("Invalid data found"):
        return (
            "This file is not a video Spool recognises: it is in no container format "
            f"Spool reads. Upload an {ACCEPTED_CONTAINERS} file."
        )
    return (
        f"This file is damaged or not a video Spool can read ({detail[:200]}). "
        f"Upload an {ACCEPTED_CONTAINERS} file."
    )
