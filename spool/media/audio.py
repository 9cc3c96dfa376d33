"""The source's audio, decoded once for the whole clip: the AAC track every rendition is
muxed with (AAC per chunk would put an encoder-priming gap at every chunk boundary), and the
16 kHz mono WAV the captions' Whisper reads."""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from spool.media import probe, tools


def within(duration: float | None) -> dict[str, str]:
    """Options that stop a read of the source, and what is made of it, at the checked
    duration: ``t`` on the input (by its timestamps) and on the output (by what was written,
    whatever the timestamps say), so no decode outlasts what the probe allowed."""
    return {"t": f"{duration:.3f}"} if duration and duration > 0 else {}


def wav_args(src: str | Path, dst: str | Path, duration: float | None = None) -> list[str]:
    inp = ffmpeg.input(tools.file_url(src), **within(duration), **tools.INPUT_OPTIONS)
    out = inp["a:0"].output(
        tools.file_url(dst),
        acodec="pcm_s16le",
        ac=1,
        ar=16000,
        format="wav",
        map_metadata=-1,
        **within(duration),
    )
    return tools.ffmpeg_argv(out)


async def extract_audio_16k_mono(
    src: str | Path,
    dst_wav: str | Path,
    *,
    duration: float | None = None,
    limits: tools.Limits | None = None,
    on_progress: tools.ProgressCallback | None = None,
) -> None:
    await tools.run_ffmpeg(
        wav_args(src, dst_wav, duration),
        limits or tools.Limits(),
        duration=duration,
        on_progress=on_progress,
    )


def aac_args(
    src: Path, dst_m4a: Path, *, audio_kbps: int, duration: float, part: bool = False
) -> list[str]:
    """The whole source's audio as one AAC stereo track starting at the video's time zero
    (silence fills a late start or a gap) and exactly ``duration`` long. ``part``: the
    source is read only that far (its first ``duration`` seconds, the same frames as the
    whole track's up to its last few)."""
    inp = ffmpeg.input(
        tools.file_url(src), **(within(duration) if part else {}), **tools.INPUT_OPTIONS
    )
    audio = (
        inp["a:0"]
        .filter("aresample", **{"async": 1, "first_pts": 0})
        .filter("apad", whole_dur=tools.seconds_arg(duration))
        .filter("atrim", end=tools.seconds_arg(duration))
    )
    out = audio.output(
        tools.file_url(dst_m4a),
        acodec="aac",
        ac=2,
        **{"b:a": f"{audio_kbps}k"},
        vn=None,
        map_metadata=-1,
        movflags="+faststart",
        format="mp4",
    )
    return tools.ffmpeg_argv(out)


async def encode_audio(
    src: Path,
    dst_m4a: Path,
    *,
    audio_kbps: int,
    limits: tools.Limits,
    on_progress: tools.ProgressCallback | None,
    duration: float | None = None,
    part: bool = False,
) -> None:
    """Encode the source's audio once, for the whole clip (no gaps at chunk boundaries).
    ``duration`` (default: the probed duration) is the length of the result; ``part``: it
    is the first part of the track, read no further (aac_args)."""
    if duration is None:
        duration = (await probe.probe(src, limits)).duration
    if not duration or duration <= 0:
        raise tools.MediaError("the source has no duration to encode audio for")
    await tools.run_ffmpeg(
        aac_args(src, dst_m4a, audio_kbps=audio_kbps, duration=duration, part=part),
        limits,
        duration=duration,
        on_progress=on_progress,
    )
