"""ffmpeg and ffprobe, hardened for hostile uploads.

Every call: local files only (``-protocol_whitelist file`` and ``file:`` names made by Spool),
a container whitelist, no stdin, a wall-clock timeout, an address-space limit, and its own
process group so a timeout or a cancel kills ffmpeg and everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from spool.models.video import ProbeResult
from spool.process import (
    ToolMissing,
    lower_session_priority,
    with_limits,
    with_nice,
    with_parent_death,
)

# Demuxers an upload may use. Excluded on purpose: playlists and indirections (hls, concat,
# image2 globbing, tty/text), which can reach other files or the network.
DEMUXER_WHITELIST = ",".join(
    [
        "mov,mp4,m4a,3gp,3g2,mj2",
        "matroska,webm",
        "avi",
        "mpegts",
        "flv",
        "ogg",
        "wav",
        "mp3",
        "aac",
        "flac",
        "asf",
        "mpeg",
        "m4v",
        "h264",
        "hevc",
        "mxf",
        "ivf",
    ]
)
INPUT_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": DEMUXER_WHITELIST}
STDERR_TAIL_LINES = 30

ProgressCallback = Callable[[float], None]


class MediaError(Exception):
    """ffmpeg or ffprobe failed; ``stderr`` holds the tail of its output."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class MediaTimeout(MediaError):
    pass


@dataclass
class Limits:
    timeout_seconds: float = 6 * 3600
    memory_limit_mb: int = 4096
    # How far below the worker's CPU priority the tool runs (0: the same). Bulk encodes run
    # lower, so the worker's own work (heartbeats, workflow tasks, a transcription waiting
    # for its captions) and anything interactive on the host go first; the encodes still
    # get every cycle nothing else wants. Applied to the tool's threads (``nice``) and to
    # its session's scheduling group (Linux autogroup: each tool has its own session, which
    # would otherwise weigh as much as the whole worker).
    nice: int = 0

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            settings.ffmpeg_timeout_seconds, settings.ffmpeg_memory_limit_mb, settings.media_nice
        )


def file_url(path: str | Path) -> str:
    """``file:`` + absolute path: a name ffmpeg cannot read as another protocol or an option."""
    p = Path(path)
    if not p.is_absolute():
        raise ValueError(f"media paths must be absolute: {path}")
    return f"file:{p}"


def hardened_argv(argv: list[str], limits: Limits) -> list[str]:
    """argv as it is started: through setpriv (dies with the thread that started it, even when
    that worker is SIGKILLed) and prlimit (address-space limit, no core dumps), each of which
    execs into the next, so the running process is the tool itself under the same pid. No
    Python runs between fork and exec (spool/process.py says why)."""
    if limits.nice:
        argv = with_nice(argv, limits.nice)
    limited = with_limits(argv, address_space_bytes=limits.memory_limit_mb * 1024 * 1024)
    return with_parent_death(limited, signal.SIGKILL)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_tool(
    argv: list[str],
    limits: Limits,
    *,
    duration: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> str:
    """Run ffmpeg/ffprobe; return stdout (when not used for progress). Raise MediaError.

    On timeout or cancellation the whole process group is killed and reaped before returning.
    """
    # A missing tool (ffmpeg, ffprobe, setpriv, prlimit) raises ToolMissing: the host is
    # misconfigured (retry on another), never a MediaError, which the probe would blame on
    # the upload (prlimit would exit 127 and the probe call it "not a video").
    if shutil.which(argv[0]) is None:
        raise ToolMissing(f"{argv[0]} is not installed on this worker (apt-get install ffmpeg)")
    proc = await asyncio.create_subprocess_exec(
        *hardened_argv(argv, limits),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Its own process group (led by the tool's pid): a timeout or cancel kills it all.
        start_new_session=True,
    )
    if limits.nice:
        lower_session_priority(proc.pid, limits.nice)
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    stdout_chunks: list[bytes] = []

    async def read_stderr() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    async def read_stdout() -> None:
        assert proc.stdout is not None
        if on_progress is None:
            stdout_chunks.append(await proc.stdout.read())
            return
        async for raw in proc.stdout:
            line = raw.decode("ascii", "replace").strip()
            key, _, value = line.partition("=")
            if key == "out_time_us" and duration and value.isdigit():
                on_progress(min(100.0, int(value) / 1e6 / duration * 100.0))
            elif key == "progress" and value == "end":
                on_progress(100.0)

    async def run() -> int:
        await asyncio.gather(read_stderr(), read_stdout())
        return await proc.wait()

    try:
        rc = await asyncio.wait_for(run(), timeout=limits.timeout_seconds)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise MediaTimeout(
            f"{Path(argv[0]).name} took longer than {limits.timeout_seconds:.0f} s",
            "\n".join(stderr_tail),
        ) from None
    except BaseException:
        _kill_group(proc.pid)
        await asyncio.shield(proc.wait())
        raise
    finally:
        # ffmpeg does not fork, but anything it left in its group goes too.
        if proc.returncode is not None:
            _kill_group(proc.pid)
    if rc != 0:
        tail = "\n".join(stderr_tail)
        last = next((line for line in reversed(stderr_tail) if line.strip()), "")
        raise MediaError(f"{Path(argv[0]).name} exited with {rc}: {last}", tail)
    return b"".join(stdout_chunks).decode("utf-8", "replace")


def file_head(path: str | Path, length: int = 16) -> bytes:
    """The first bytes of a file: its signature."""
    with open(path, "rb") as fh:
        return fh.read(length)


def _file_size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


# --- probe ---------------------------------------------------------------------------------

# Only what parse_probe reads: an upload's tags (megabytes of them, if it likes) never reach
# Spool's memory or the output pipe.
PROBE_ENTRIES = ":".join(
    [
        "format=format_name,duration,bit_rate",
        "stream=index,codec_type,codec_name,width,height,sample_aspect_ratio,duration,"
        "avg_frame_rate,r_frame_rate",
        "stream_disposition=attached_pic",
        "stream_tags=rotate",
        "stream_side_data=rotation",
    ]
)
# A header can declare any picture size; decoding a few packets of the main video stream
# proves there are pictures behind it before any heavy step is started for them (a few, not
# one: a capture cut mid-GOP decodes nothing until its next keyframe).
FIRST_FRAMES_PACKETS = 16


def probe_args(path: str | Path) -> list[str]:
    return [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        DEMUXER_WHITELIST,
        "-show_entries",
        PROBE_ENTRIES,
        "-of",
        "json",
        file_url(path),
    ]


def first_frames_args(path: str | Path) -> list[str]:
    """ffprobe that decodes the first packets of the main video stream (``V``: not cover art)
    and prints the size of each picture it got."""
    return [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        DEMUXER_WHITELIST,
        "-select_streams",
        "V:0",
        "-read_intervals",
        f"%+#{FIRST_FRAMES_PACKETS}",
        "-show_entries",
        "frame=width,height",
        "-of",
        "json",
        file_url(path),
    ]


async def decoded_frame_count(path: str | Path, limits: Limits) -> int:
    """How many pictures the first packets of the main video stream decode to."""
    out = await run_tool(first_frames_args(path), limits)
    try:
        frames = json.loads(out or "{}").get("frames") or []
    except json.JSONDecodeError as exc:
        raise MediaError(f"ffprobe printed unreadable output: {exc}") from exc
    return sum(1 for f in frames if int(f.get("width") or 0) > 0 < int(f.get("height") or 0))


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
    for line in lines:
        match = _WHITELIST_REFUSAL.match(line)
        if match:
            demuxer = match["demuxer"]
            what = REFUSED_FORMATS.get(demuxer, f"in the {demuxer} format")
            if demuxer in ("hls", "concat"):
                return (
                    f"This file is {what}, not a video: Spool never follows a playlist to "
                    "other files or addresses. Upload the video itself as "
                    f"{ACCEPTED_CONTAINERS}."
                )
            return (
                f"This file is {what}, not a video Spool accepts. "
                f"Upload an {ACCEPTED_CONTAINERS} file."
            )
    if any("moov atom not found" in line for line in lines):
        return (
            "This file is not a video Spool can read yet: an incomplete MP4/MOV whose index "
            "(the moov atom) is missing, so it was probably cut off while uploading or "
            "recording. Upload the whole file."
        )
    kind = next((name for magic, name in KNOWN_SIGNATURES if head.startswith(magic)), None)
    if kind:
        return f"This file is {kind}, not a video. Upload an {ACCEPTED_CONTAINERS} file."
    detail = _LOG_PREFIX.sub("", lines[-1]) if lines else "no details"
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


def _seconds(value) -> float:
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
    from_streams = max((_seconds(s.get("duration")) for s in streams), default=0.0)
    return from_streams or _seconds(fmt.get("duration"))


def _bit_rate(fmt: dict, duration: float, size_bytes: int) -> int | None:
    """The container's overall bit rate, unless it was worked out from a duration the streams
    disprove (see _media_duration): then the file's size over the true duration."""
    claimed = _seconds(fmt.get("duration"))
    if size_bytes and duration and claimed and abs(claimed - duration) > 0.1 * duration:
        return round(size_bytes * 8 / duration)
    try:
        return int(fmt["bit_rate"]) if fmt.get("bit_rate") else None
    except ValueError:
        return None


def _display_width(stream: dict, width: int) -> int:
    """The width the picture is shown at: stored width × sample aspect ratio (DV, DVD and HDV
    store wide pictures in narrow, non-square pixels), kept even."""
    num, _, den = str(stream.get("sample_aspect_ratio") or "").partition(":")
    if not (num.isdigit() and den.isdigit()) or int(num) in (0, int(den)) or int(den) == 0:
        return width  # square pixels (1:1, or unknown: 0:1)
    return max(2, round(width * int(num) / int(den) / 2) * 2)


def parse_probe(data: dict, size_bytes: int = 0) -> ProbeResult:
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
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
    )


async def probe(path: str | Path, limits: Limits | None = None) -> ProbeResult:
    limits = limits or Limits(timeout_seconds=120)
    out = await run_tool(probe_args(path), limits)
    try:
        data = json.loads(out or "{}")
    except json.JSONDecodeError as exc:
        raise MediaError(f"ffprobe printed unreadable output: {exc}") from exc
    return parse_probe(data, size_bytes=_file_size(path))


# --- commands ------------------------------------------------------------------------------


def _compile(stream) -> list[str]:
    argv = (
        stream.global_args(
            "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-progress", "pipe:1"
        )
        .overwrite_output()
        .compile(cmd="ffmpeg")
    )
    return list(argv)


# The width of a rendition ``oh`` pixels tall: the source's DISPLAY aspect (dar = storage aspect
# × sample aspect), even, so that square output pixels (setsar=1) show the picture undistorted.
# For square-pixel sources this is exactly what ``scale=-2:oh`` gives.
DISPLAY_WIDTH = "round(oh*dar/2)*2"


def rendition_args(
    src: str | Path,
    dst: str | Path,
    height: int,
    *,
    video_kbps: int,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
) -> list[str]:
    inp = ffmpeg.input(file_url(src), **INPUT_OPTIONS)
    video = inp["v:0"].filter("scale", DISPLAY_WIDTH, height).filter("setsar", 1)
    streams = [video, inp["a:0"]] if has_audio else [video]
    out = ffmpeg.output(
        *streams,
        file_url(dst),
        **_rendition_output_options(video_kbps, preset, audio_kbps, has_audio),
    )
    return _compile(out)


@dataclass(frozen=True)
class RenditionSpec:
    """One output of a single-decode ladder: where, how tall, how many kbit/s of video."""

    dst: str | Path
    height: int
    video_kbps: int


def _rendition_output_options(
    video_kbps: int, preset: str, audio_kbps: int, has_audio: bool
) -> dict:
    opts: dict = {
        "vcodec": "libx264",
        "preset": preset,
        "pix_fmt": "yuv420p",
        "b:v": f"{video_kbps}k",
        "maxrate": f"{int(video_kbps * 1.5)}k",
        "bufsize": f"{video_kbps * 2}k",
        "movflags": "+faststart",
        "map_metadata": -1,
        "format": "mp4",
    }
    if has_audio:
        opts.update({"acodec": "aac", "b:a": f"{audio_kbps}k", "ac": 2})
    else:
        opts["an"] = None
    return opts


def ladder_args(
    src: str | Path,
    specs: list[RenditionSpec],
    *,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
) -> list[str]:
    """ONE ffmpeg that decodes the source once and feeds every rendition (split + scale per
    output, one output file each). Same input flags and per-output options as
    ``rendition_args``, so each file is what the per-rendition command would make."""
    if not specs:
        raise ValueError("no renditions requested")
    inp = ffmpeg.input(file_url(src), **INPUT_OPTIONS)
    video = inp["v:0"]
    branches = video.split() if len(specs) > 1 else None
    outputs = []
    for i, spec in enumerate(specs):
        branch = branches[i] if branches is not None else video
        scaled = branch.filter("scale", DISPLAY_WIDTH, spec.height).filter("setsar", 1)
        streams = [scaled, inp["a:0"]] if has_audio else [scaled]
        outputs.append(
            ffmpeg.output(
                *streams,
                file_url(spec.dst),
                **_rendition_output_options(spec.video_kbps, preset, audio_kbps, has_audio),
            )
        )
    return _compile(ffmpeg.merge_outputs(*outputs))


def poster_args(src: str | Path, dst: str | Path, at_seconds: float) -> list[str]:
    inp = ffmpeg.input(file_url(src), ss=f"{max(0.0, at_seconds):.3f}", **INPUT_OPTIONS)
    out = inp["v:0"].output(
        file_url(dst), vframes=1, vcodec="mjpeg", format="image2", update=1, **{"q:v": 3}
    )
    return _compile(out)


def audio_args(src: str | Path, dst: str | Path) -> list[str]:
    inp = ffmpeg.input(file_url(src), **INPUT_OPTIONS)
    out = inp["a:0"].output(
        file_url(dst), acodec="pcm_s16le", ac=1, ar=16000, format="wav", map_metadata=-1
    )
    return _compile(out)


async def transcode_rendition(
    src: str | Path,
    dst: str | Path,
    height: int,
    *,
    video_kbps: int,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
    duration: float | None = None,
    limits: Limits | None = None,
    on_progress: ProgressCallback | None = None,
) -> None:
    argv = rendition_args(
        src,
        dst,
        height,
        video_kbps=video_kbps,
        audio_kbps=audio_kbps,
        preset=preset,
        has_audio=has_audio,
    )
    await run_tool(
        argv, limits or Limits(), duration=duration, on_progress=on_progress or (lambda _p: None)
    )


async def transcode_ladder(
    src: str | Path,
    specs: list[RenditionSpec],
    *,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
    duration: float | None = None,
    limits: Limits | None = None,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Every rendition from one decode of the source, in one hardened ffmpeg process.

    All or nothing: if any output fails, the whole call fails (and must be redone).
    """
    argv = ladder_args(src, specs, audio_kbps=audio_kbps, preset=preset, has_audio=has_audio)
    await run_tool(
        argv, limits or Limits(), duration=duration, on_progress=on_progress or (lambda _p: None)
    )


async def extract_poster(
    src: str | Path, dst: str | Path, at_seconds: float, limits: Limits | None = None
) -> None:
    limits = limits or Limits(timeout_seconds=300)
    await run_tool(poster_args(src, dst, at_seconds), limits, on_progress=lambda _p: None)
    if _file_size(dst) == 0 and at_seconds > 0:
        # A seek can land past the only keyframe before the end (MPEG-TS with one long GOP):
        # nothing decodes from there, and every retry would land there again. The first
        # picture is a poster too.
        await run_tool(poster_args(src, dst, 0.0), limits, on_progress=lambda _p: None)
    if _file_size(dst) == 0:
        raise MediaError(f"no frame at {at_seconds:.2f} s")


async def extract_audio_16k_mono(
    src: str | Path,
    dst_wav: str | Path,
    *,
    duration: float | None = None,
    limits: Limits | None = None,
    on_progress: ProgressCallback | None = None,
) -> None:
    await run_tool(
        audio_args(src, dst_wav),
        limits or Limits(),
        duration=duration,
        on_progress=on_progress or (lambda _p: None),
    )
