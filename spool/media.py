"""ffmpeg and ffprobe, hardened for hostile uploads.

Every call: local files only (``-protocol_whitelist file`` and ``file:`` names made by Spool),
a container whitelist, no stdin, a wall-clock timeout, an address-space limit, and its own
process group so a timeout or a cancel kills ffmpeg and everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from spool.models.video import ProbeResult
from spool.process import die_with_parent

# Demuxers an upload may use. Excluded on purpose: playlists and indirections (hls, concat,
# image2 globbing, tty/text), which can reach other files or the network.
DEMUXER_WHITELIST = ",".join([
    "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "flv", "ogg", "wav", "mp3",
    "aac", "flac", "asf", "mpeg", "m4v", "h264", "hevc", "mxf", "ivf",
])
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

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(settings.ffmpeg_timeout_seconds, settings.ffmpeg_memory_limit_mb)


def file_url(path: str | Path) -> str:
    """``file:`` + absolute path: a name ffmpeg cannot read as another protocol or an option."""
    p = Path(path)
    if not p.is_absolute():
        raise ValueError(f"media paths must be absolute: {path}")
    return f"file:{p}"


def _limit_resources(memory_mb: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # If the worker dies (even by SIGKILL), its ffmpeg dies with it instead of running on.
        die_with_parent(signal.SIGKILL)
    return apply


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
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limit_resources(limits.memory_limit_mb),
    )
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
            "\n".join(stderr_tail)) from None
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


def _file_size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


# --- probe ---------------------------------------------------------------------------------

def probe_args(path: str | Path) -> list[str]:
    return ["ffprobe", "-hide_banner", "-v", "error",
            "-protocol_whitelist", "file", "-format_whitelist", DEMUXER_WHITELIST,
            "-show_format", "-show_streams", "-of", "json", file_url(path)]


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


def parse_probe(data: dict, size_bytes: int = 0) -> ProbeResult:
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    durations = [fmt.get("duration")] + [s.get("duration") for s in (video, audio) if s]
    duration = 0.0
    for d in durations:
        try:
            if d is not None and float(d) > 0:
                duration = float(d)
                break
        except ValueError:
            continue
    width = int(video.get("width") or 0) if video else 0
    height = int(video.get("height") or 0) if video else 0
    rotation = _rotation(video) if video else 0
    if abs(rotation) % 180 == 90:
        width, height = height, width
    try:
        bit_rate = int(fmt["bit_rate"]) if fmt.get("bit_rate") else None
    except ValueError:
        bit_rate = None
    return ProbeResult(
        duration=duration, width=width, height=height,
        has_video=video is not None and width > 0 and height > 0,
        has_audio=audio is not None, format_name=str(fmt.get("format_name", "")),
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        rotation=rotation, fps=_fps(video) if video else None, bit_rate=bit_rate,
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
    argv = stream.global_args("-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
                              "-progress", "pipe:1").overwrite_output().compile(cmd="ffmpeg")
    return list(argv)


def rendition_args(src: str | Path, dst: str | Path, height: int, *, video_kbps: int,
                   audio_kbps: int = 128, preset: str = "veryfast",
                   has_audio: bool = True) -> list[str]:
    inp = ffmpeg.input(file_url(src), **INPUT_OPTIONS)
    video = inp["v:0"].filter("scale", -2, height).filter("setsar", 1)
    streams = [video, inp["a:0"]] if has_audio else [video]
    out = ffmpeg.output(*streams, file_url(dst), **_rendition_output_options(
        video_kbps, preset, audio_kbps, has_audio))
    return _compile(out)


@dataclass(frozen=True)
class RenditionSpec:
    """One output of a single-decode ladder: where, how tall, how many kbit/s of video."""
    dst: str | Path
    height: int
    video_kbps: int


def _rendition_output_options(video_kbps: int, preset: str, audio_kbps: int,
                              has_audio: bool) -> dict:
    opts: dict = {
        "vcodec": "libx264", "preset": preset, "pix_fmt": "yuv420p",
        "b:v": f"{video_kbps}k", "maxrate": f"{int(video_kbps * 1.5)}k",
        "bufsize": f"{video_kbps * 2}k", "movflags": "+faststart",
        "map_metadata": -1, "format": "mp4",
    }
    if has_audio:
        opts.update({"acodec": "aac", "b:a": f"{audio_kbps}k", "ac": 2})
    else:
        opts["an"] = None
    return opts


def ladder_args(src: str | Path, specs: list[RenditionSpec], *, audio_kbps: int = 128,
                preset: str = "veryfast", has_audio: bool = True) -> list[str]:
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
        scaled = branch.filter("scale", -2, spec.height).filter("setsar", 1)
        streams = [scaled, inp["a:0"]] if has_audio else [scaled]
        outputs.append(ffmpeg.output(*streams, file_url(spec.dst), **_rendition_output_options(
            spec.video_kbps, preset, audio_kbps, has_audio)))
    return _compile(ffmpeg.merge_outputs(*outputs))


def poster_args(src: str | Path, dst: str | Path, at_seconds: float) -> list[str]:
    inp = ffmpeg.input(file_url(src), ss=f"{max(0.0, at_seconds):.3f}", **INPUT_OPTIONS)
    out = inp["v:0"].output(file_url(dst), vframes=1, vcodec="mjpeg", format="image2",
                            update=1, **{"q:v": 3})
    return _compile(out)


def audio_args(src: str | Path, dst: str | Path) -> list[str]:
    inp = ffmpeg.input(file_url(src), **INPUT_OPTIONS)
    out = inp["a:0"].output(file_url(dst), acodec="pcm_s16le", ac=1, ar=16000, format="wav",
                            map_metadata=-1)
    return _compile(out)


async def transcode_rendition(src: str | Path, dst: str | Path, height: int, *,
                              video_kbps: int, audio_kbps: int = 128, preset: str = "veryfast",
                              has_audio: bool = True, duration: float | None = None,
                              limits: Limits | None = None,
                              on_progress: ProgressCallback | None = None) -> None:
    argv = rendition_args(src, dst, height, video_kbps=video_kbps, audio_kbps=audio_kbps,
                          preset=preset, has_audio=has_audio)
    await run_tool(argv, limits or Limits(), duration=duration,
                   on_progress=on_progress or (lambda _p: None))


async def transcode_ladder(src: str | Path, specs: list[RenditionSpec], *,
                           audio_kbps: int = 128, preset: str = "veryfast",
                           has_audio: bool = True, duration: float | None = None,
                           limits: Limits | None = None,
                           on_progress: ProgressCallback | None = None) -> None:
    """Every rendition from one decode of the source, in one hardened ffmpeg process.

    All or nothing: if any output fails, the whole call fails (and must be redone).
    """
    argv = ladder_args(src, specs, audio_kbps=audio_kbps, preset=preset, has_audio=has_audio)
    await run_tool(argv, limits or Limits(), duration=duration,
                   on_progress=on_progress or (lambda _p: None))


async def extract_poster(src: str | Path, dst: str | Path, at_seconds: float,
                         limits: Limits | None = None) -> None:
    await run_tool(poster_args(src, dst, at_seconds), limits or Limits(timeout_seconds=300),
                   on_progress=lambda _p: None)
    if _file_size(dst) == 0:
        raise MediaError(f"no frame at {at_seconds:.2f} s")


async def extract_audio_16k_mono(src: str | Path, dst_wav: str | Path, *,
                                 duration: float | None = None, limits: Limits | None = None,
                                 on_progress: ProgressCallback | None = None) -> None:
    await run_tool(audio_args(src, dst_wav), limits or Limits(), duration=duration,
                   on_progress=on_progress or (lambda _p: None))
