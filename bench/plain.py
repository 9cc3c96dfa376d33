"""The plain script's commands: progressive H.264/AAC MP4 renditions of a whole source, one
at a time or every rung from one decode (split + scale per output), each through Spool's
hardened ffmpeg (spool/media/tools.py). Only the benches use them, as the plain arrangement
of the same tools Spool's pipeline is measured against; the pipeline itself encodes in time
chunks (spool/media/chunks.py)."""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from spool.media import rates, tools
from spool.media.chunks import RenditionSpec, scale_to_rung


def rendition_output_options(
    video_kbps: int,
    preset: str,
    audio_kbps: int,
    has_audio: bool,
    crf: float | None = None,
    seconds: float | None = None,
) -> dict:
    """ffmpeg's output options for a progressive MP4 rendition: the rate options are the
    pipeline's own (spool/media/rates.py), so both sides spend bits the same way."""
    opts: dict = {
        "vcodec": "libx264",
        "preset": preset,
        "pix_fmt": "yuv420p",
        **rates.x264_rate_options(video_kbps, crf, seconds),
        "movflags": "+faststart",
        "map_metadata": -1,
        "format": "mp4",
    }
    if has_audio:
        opts.update({"acodec": "aac", "b:a": f"{audio_kbps}k", "ac": 2})
    else:
        opts["an"] = None
    return opts


def rendition_args(
    src: str | Path,
    dst: str | Path,
    height: int,
    *,
    video_kbps: int,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
    crf: float | None = None,
    seconds: float | None = None,
) -> list[str]:
    inp = ffmpeg.input(tools.file_url(src), **tools.INPUT_OPTIONS)
    video = scale_to_rung(inp["v:0"], height)
    streams = [video, inp["a:0"]] if has_audio else [video]
    out = ffmpeg.output(
        *streams,
        tools.file_url(dst),
        **rendition_output_options(video_kbps, preset, audio_kbps, has_audio, crf, seconds),
    )
    return tools.ffmpeg_argv(out)


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
    limits: tools.Limits | None = None,
    on_progress: tools.ProgressCallback | None = None,
    crf: float | None = None,
) -> None:
    argv = rendition_args(
        src,
        dst,
        height,
        video_kbps=video_kbps,
        audio_kbps=audio_kbps,
        preset=preset,
        has_audio=has_audio,
        crf=crf,
        seconds=duration,
    )
    await tools.run_ffmpeg(
        argv, limits or tools.Limits(), duration=duration, on_progress=on_progress
    )


def ladder_args(
    src: str | Path,
    specs: list[RenditionSpec],
    *,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
    seconds: float | None = None,
) -> list[str]:
    """ONE ffmpeg that decodes the source once and feeds every rendition. Same input flags
    and per-output options as ``rendition_args``, so each file is what the
    per-rendition command would make."""
    if not specs:
        raise ValueError("no renditions requested")
    inp = ffmpeg.input(tools.file_url(src), **tools.INPUT_OPTIONS)
    video = inp["v:0"]
    branches = video.split() if len(specs) > 1 else None
    outputs = []
    for i, spec in enumerate(specs):
        branch = branches[i] if branches is not None else video
        scaled = scale_to_rung(branch, spec.height)
        streams = [scaled, inp["a:0"]] if has_audio else [scaled]
        outputs.append(
            ffmpeg.output(
                *streams,
                tools.file_url(spec.dst),
                **rendition_output_options(
                    spec.video_kbps, preset, audio_kbps, has_audio, spec.crf, seconds
                ),
            )
        )
    return tools.ffmpeg_argv(ffmpeg.merge_outputs(*outputs))


async def transcode_ladder(
    src: str | Path,
    specs: list[RenditionSpec],
    *,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
    duration: float | None = None,
    limits: tools.Limits | None = None,
    on_progress: tools.ProgressCallback | None = None,
) -> None:
    """Every rendition from one decode of the source, in one hardened ffmpeg process.

    All or nothing: if any output fails, the whole call fails (and must be redone).
    """
    argv = ladder_args(
        src, specs, audio_kbps=audio_kbps, preset=preset, has_audio=has_audio, seconds=duration
    )
    await tools.run_ffmpeg(
        argv, limits or tools.Limits(), duration=duration, on_progress=on_progress
    )
