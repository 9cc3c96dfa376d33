"""Generated test media: espeak-ng speech and ffmpeg lavfi pictures, small and short."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

SPEECH_TEXT = "Hello world, this is a simple test."
# ffmpeg quiet (errors only), overwriting its output.
FFMPEG = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]


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
    from spool.media import tools

    return {**tools.INPUT_OPTIONS, "re": None}


def normalized_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def speech_wav(path: Path, text: str = SPEECH_TEXT) -> Path:
    _run(["espeak-ng", "-s", "130", "-w", str(path), text])
    return path


def make_clip(
    path: Path,
    *,
    width: int,
    height: int,
    seconds: float = 3.5,
    fps: int = 15,
    speech: str | None = SPEECH_TEXT,
    tone: bool = False,
    rotate: int | None = None,
    pattern: str = "testsrc",
) -> Path:
    """An H.264/AAC MP4 of a test pattern with spoken audio (or a tone, or no audio)."""
    argv = [
        *FFMPEG,
        "-f",
        "lavfi",
        "-i",
        f"{pattern}=size={width}x{height}:rate={fps}",
    ]
    if speech:
        wav = speech_wav(path.with_suffix(".speech.wav"), speech)
        argv += ["-i", str(wav), "-filter:a", "apad", "-c:a", "aac", "-b:a", "64k"]
    elif tone:
        argv += [
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=16000",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ]
    # 4:2:0 needs even dimensions; odd test sizes use 4:4:4 (still H.264, as some cameras do).
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    argv += ["-t", f"{seconds}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt]
    if rotate is None:
        _run([*argv, str(path)])
        return path
    # A rotation tag as phones write it: a display matrix on an untouched (landscape) stream.
    plain = path.with_suffix(".plain.mp4")
    _run([*argv, str(plain)])
    _run(
        [
            *FFMPEG,
            "-i",
            str(plain),
            "-c",
            "copy",
            "-metadata:s:v:0",
            f"rotate={rotate}",
            str(path),
        ]
    )
    return path


def make_paced_clip(path: Path, *, seconds: float = 20) -> Path:
    """A 320x180 pattern with a tone, for the tests that catch an encode in the middle: read
    at its own pace (pace_inputs), no encode of it ends before ``seconds``."""
    return make_clip(
        path, width=320, height=180, seconds=seconds, speech=None, tone=True, pattern="testsrc2"
    )


def make_audio_only(path: Path) -> Path:
    wav = speech_wav(path.with_suffix(".wav"))
    _run(
        [
            *FFMPEG,
            "-i",
            str(wav),
            "-c:a",
            "aac",
            str(path),
        ]
    )
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


# --- clips for chunked encoding (tests/test_encoding.py) -----------------------------------

MARK_TONE_HZ = 440
MARK_SAMPLE_RATE = 48000
MARK_QUIET = 0.125  # the tone's amplitude before the beep
MARK_LOUD = 0.75  # and from the beep on


def make_marked_clip(
    path: Path,
    *,
    width: int,
    height: int,
    seconds: float,
    flash_at: float,
    fps: int = 30,
    gop: int | None = None,
    slow_after: float | None = None,
    video_seconds: float | None = None,
    audio_delay: float = 0.0,
) -> Path:
    """testsrc2 with a white flash (0.1 s) at ``flash_at`` and an unbroken 440 Hz tone that
    turns six times louder at the same instant: the pair an A/V sync test looks for.

    ``gop``: one keyframe every ``gop`` frames (no scene-cut keyframes in between).
    ``slow_after``: from that time on only every third frame is kept, so the clip has a
    variable frame rate (fps, then fps / 3).
    ``video_seconds``: the pictures stop there while the tone goes on to ``seconds``.
    ``audio_delay``: the audio track starts that late (as some cameras write it); the beep
    still sounds with the flash."""
    flash_frame = round(flash_at * fps)
    video = (
        f"testsrc2=size={width}x{height}:rate={fps},"
        f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:"
        f"enable='gte(n,{flash_frame})*lt(n,{flash_frame + round(0.1 * fps)})'"
    )
    if slow_after is not None:
        video += f",select='lt(t,{slow_after})+not(mod(n,3))'"
    tone = (
        f"aevalsrc='{MARK_QUIET}*sin(2*PI*{MARK_TONE_HZ}*t)"
        f"*(1+{MARK_LOUD / MARK_QUIET - 1:g}*gte(t,{flash_at - audio_delay}))'"
        f":s={MARK_SAMPLE_RATE}"
    )
    video_length = [] if video_seconds is None else ["-t", f"{video_seconds}"]
    argv = [
        *FFMPEG,
        *video_length,
        "-f",
        "lavfi",
        "-i",
        video,
        "-itsoffset",
        f"{audio_delay}",
        "-f",
        "lavfi",
        "-i",
        tone,
        "-t",
        f"{seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-fps_mode",
        "vfr" if slow_after else "cfr",
    ]
    if gop is not None:
        argv += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    _run([*argv, str(path)])
    return path


# Sound with no speech in it: a chord pulsing like a beat, and pink noise.
MUSIC = (
    "aevalsrc='0.25*(sin(2*PI*261.63*t)+sin(2*PI*329.63*t)+sin(2*PI*392*t))"
    "*(0.6+0.4*sin(2*PI*2*t))':s=16000"
)
NOISE = "anoisesrc=color=pink:amplitude=0.3:sample_rate=16000"


def sound_wav(path: Path, source: str, *, seconds: float = 8) -> Path:
    """A 16 kHz mono WAV of an ffmpeg lavfi audio source (MUSIC, NOISE)."""
    _run(
        [*FFMPEG, "-f", "lavfi", "-i", source]
        + ["-t", f"{seconds}", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(path)]
    )
    return path


def silence_then_speech_wav(path: Path, *, silence: float, text: str = SPEECH_TEXT) -> Path:
    """A 16 kHz mono WAV: ``silence`` seconds of nothing, then espeak-ng saying ``text``."""
    spoken = speech_wav(path.with_suffix(".speech.wav"), text)
    _run(
        [*FFMPEG, "-i", str(spoken)]
        + ["-af", f"adelay={int(silence * 1000)}:all=1", "-ac", "1", "-ar", "16000"]
        + ["-c:a", "pcm_s16le", str(path)]
    )
    return path
