"""Generated test media: espeak-ng speech and ffmpeg lavfi pictures, small and short."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

SPEECH_TEXT = "Hello world, this is a simple test."


def tools_missing() -> str | None:
    for tool in ("ffmpeg", "ffprobe", "espeak-ng"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def pace_inputs() -> dict:
    """ffmpeg input options that read every input at its native frame rate (``-re``).

    The gate for tests that must catch an encode in the middle (cancel, kill, timeout): an
    N-second clip then takes at least N seconds to encode however fast the machine is, and
    the test acts as soon as it sees progress, never after a guessed delay."""
    from spool import media

    return {**media.INPUT_OPTIONS, "re": None}


def normalized_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def speech_wav(path: Path, text: str = SPEECH_TEXT) -> Path:
    _run(["espeak-ng", "-s", "130", "-w", str(path), text])
    return path


def make_clip(path: Path, *, width: int, height: int, seconds: float = 3.5, fps: int = 15,
              speech: str | None = SPEECH_TEXT, tone: bool = False,
              rotate: int | None = None, pattern: str = "testsrc") -> Path:
    """An H.264/AAC MP4 of a test pattern with spoken audio (or a tone, or no audio)."""
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            f"{pattern}=size={width}x{height}:rate={fps}"]
    if speech:
        wav = speech_wav(path.with_suffix(".speech.wav"), speech)
        argv += ["-i", str(wav), "-filter:a", "apad", "-c:a", "aac", "-b:a", "64k"]
    elif tone:
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
                 "-c:a", "aac", "-b:a", "64k"]
    # 4:2:0 needs even dimensions; odd test sizes use 4:4:4 (still H.264, as some cameras do).
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    argv += ["-t", f"{seconds}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt]
    if rotate is None:
        _run([*argv, str(path)])
        return path
    # A rotation tag as phones write it: a display matrix on an untouched (landscape) stream.
    plain = path.with_suffix(".plain.mp4")
    _run([*argv, str(plain)])
    _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(plain), "-c", "copy",
          "-metadata:s:v:0", f"rotate={rotate}", str(path)])
    return path


def make_audio_only(path: Path) -> Path:
    wav = speech_wav(path.with_suffix(".wav"))
    _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav),
          "-c:a", "aac", str(path)])
    return path


def make_text_file(path: Path) -> Path:
    path.write_text("This is not a video.\n" * 20)
    return path


def make_empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def make_truncated_mp4(path: Path) -> Path:
    """An MP4 cut off mid-file; its index (moov, written last) is missing."""
    full = make_clip(path.with_suffix(".full.mp4"), width=320, height=240, seconds=2)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path
