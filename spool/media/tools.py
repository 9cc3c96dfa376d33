"""ffmpeg and ffprobe, hardened for hostile uploads: the one way Spool starts either.

Every call: local files only (``-protocol_whitelist file`` and ``file:`` names made by Spool),
a container whitelist, no stdin, a wall-clock timeout, an address-space limit, and its own
process group so a timeout or a cancel kills ffmpeg and everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
# ffmpeg's input options for an upload. Builders read it when they build (``tools.
# INPUT_OPTIONS``), never a copy taken at import: the paced tests replace it.
INPUT_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": DEMUXER_WHITELIST}
# Demuxers for Spool's own intermediate files: the chunk list (concat) and the MP4/M4A files
# it names; the thumbnails a storyboard tiles.
OWN_MP4_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2"
OWN_MP4_INPUT = {"protocol_whitelist": "file", "format_whitelist": OWN_MP4_FORMATS}
OWN_CONCAT_INPUT = {
    "protocol_whitelist": "file",
    "format_whitelist": "concat,mov,mp4,m4a,3gp,3g2,mj2,image2,jpeg_pipe",
}
STDERR_TAIL_LINES = 30

ProgressCallback = Callable[[float], None]
LineCallback = Callable[[str], bool | None]  # False: stop the tool here


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
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            settings.ffmpeg_timeout_seconds, settings.ffmpeg_memory_limit_mb, settings.media_nice
        )


def file_url(path: str | Path) -> str:
    """``file:`` + absolute path: a name ffmpeg cannot read as another protocol or an option."""
    p = Path(path)
    if not p.is_absolute():
        raise ValueError(f"media paths must be absolute: {path}")
    return f"file:{p}"


def seconds_arg(value: float) -> str:
    """A time as ffmpeg is given it: seconds to the microsecond."""
    return f"{value:.6f}"


def ffmpeg_argv(stream: Any) -> list[str]:
    """The argv of an ffmpeg-python graph, with the options every ffmpeg Spool runs carries:
    no stdin, errors only on stderr, progress on stdout (``run_tool`` reads it)."""
    argv = (
        stream.global_args(
            "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-progress", "pipe:1"
        )
        .overwrite_output()
        .compile(cmd="ffmpeg")
    )
    return list(argv)


def ffprobe_argv(
    path: str | Path, options: list[str], *, formats: str = DEMUXER_WHITELIST
) -> list[str]:
    """ffprobe of one local file with the input hardening (local files only, the container
    whitelist ``formats``), printing JSON unless ``options`` ask otherwise."""
    return [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        formats,
        *options,
        file_url(path),
    ]


def concat_list(files: list[Path]) -> str:
    """An ffconcat list naming each file as a ``file:`` URL (no other protocol)."""
    lines = ["ffconcat version 1.0"]
    for path in files:
        url = file_url(path)
        if "'" in url or "\n" in url:
            raise ValueError(f"chunk path cannot be listed for concat: {path}")
        lines.append(f"file '{url}'")
    return "\n".join(lines) + "\n"


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


@dataclass
class _Output:
    """What a running tool prints: its stderr's tail, and stdout as progress or as text."""

    duration: float | None
    on_progress: ProgressCallback | None
    on_line: LineCallback | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    stdout_chunks: list[bytes] = field(default_factory=list)
    stopped: bool = False  # on_line asked to stop: the tool was killed on purpose

    async def read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    async def read_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        stream = proc.stdout
        if self.on_line is not None:
            async for raw in stream:
                if self.on_line(raw.decode("utf-8", "replace").rstrip("\r\n")) is False:
                    self.stopped = True
                    _kill_group(proc.pid)
                    return
            return
        if self.on_progress is None:
            self.stdout_chunks.append(await stream.read())
            return
        async for raw in stream:
            line = raw.decode("ascii", "replace").strip()
            key, _, value = line.partition("=")
            if key == "out_time_us" and self.duration and value.isdigit():
                self.on_progress(min(100.0, int(value) / 1e6 / self.duration * 100.0))
            elif key == "progress" and value == "end":
                self.on_progress(100.0)

    async def collect(self, proc: asyncio.subprocess.Process) -> int:
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(self.read_stderr(proc.stderr), self.read_stdout(proc))
        return await proc.wait()

    def tail(self) -> str:
        return "\n".join(self.stderr_tail)

    def last_line(self) -> str:
        return next((line for line in reversed(self.stderr_tail) if line.strip()), "")

    def text(self) -> str:
        return b"".join(self.stdout_chunks).decode("utf-8", "replace")


async def _start(argv: list[str], limits: Limits) -> asyncio.subprocess.Process:
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
    return proc


async def run_tool(
    argv: list[str],
    limits: Limits,
    *,
    duration: float | None = None,
    on_progress: ProgressCallback | None = None,
    on_line: LineCallback | None = None,
) -> str:
    """Run ffmpeg/ffprobe; return stdout (when not used for progress). Raise MediaError.

    ``on_line`` takes stdout a line at a time instead (nothing is kept), and may return False
    to stop the tool there: a listing as long as the upload makes it is never held whole.
    On timeout or cancellation the whole process group is killed and reaped before returning.
    """
    proc = await _start(argv, limits)
    output = _Output(duration, on_progress, on_line)
    try:
        rc = await asyncio.wait_for(output.collect(proc), timeout=limits.timeout_seconds)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise MediaTimeout(
            f"{Path(argv[0]).name} took longer than {limits.timeout_seconds:.0f} s",
            output.tail(),
        ) from None
    except BaseException:
        _kill_group(proc.pid)
        await asyncio.shield(proc.wait())
        raise
    finally:
        # ffmpeg does not fork, but anything it left in its group goes too.
        if proc.returncode is not None:
            _kill_group(proc.pid)
    if rc != 0 and not output.stopped:
        raise MediaError(
            f"{Path(argv[0]).name} exited with {rc}: {output.last_line()}", output.tail()
        )
    return output.text()


async def run_ffmpeg(
    argv: list[str],
    limits: Limits,
    *,
    duration: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> None:
    """An ffmpeg command built by ``ffmpeg_argv``: its stdout is progress, read even when
    nobody wants it."""
    await run_tool(argv, limits, duration=duration, on_progress=on_progress or _ignore)


def _ignore(_percent: float) -> None:
    pass


async def probe_json(argv: list[str], limits: Limits) -> dict:
    """What an ffprobe printing JSON printed. Raise MediaError for output that is not JSON."""
    out = await run_tool(argv, limits)
    try:
        return json.loads(out or "{}")
    except json.JSONDecodeError as exc:
        raise MediaError(f"ffprobe printed unreadable output: {exc}") from exc


async def stream_info(
    path: Path, selector: str, limits: Limits, *, formats: str = OWN_MP4_FORMATS
) -> dict:
    """Codec, size, frame rate (and channels) of one stream of a file Spool wrote
    (``selector``: "v:0")."""
    argv = ffprobe_argv(
        path,
        [
            "-select_streams",
            selector,
            "-show_entries",
            "stream=codec_name,profile,width,height,avg_frame_rate,r_frame_rate,channels",
            "-of",
            "json",
        ],
        formats=formats,
    )
    streams = json.loads(await run_tool(argv, limits) or "{}").get("streams") or []
    if not streams:
        raise MediaError(f"{path.name} has no {selector} stream")
    return streams[0]


def file_head(path: str | Path, length: int = 16) -> bytes:
    """The first bytes of a file: its signature."""
    with open(path, "rb") as fh:
        return fh.read(length)


def file_size(path: str | Path) -> int:
    """A file's size; 0 for one that was never written."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def make_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove(path: Path) -> None:
    """Delete a (partial) output; one whose folder is missing or a file was never written."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()
