"""The plain script's ladder: one hardened ffmpeg that decodes the source once and encodes
every rendition (split + scale per output, one progressive MP4 each). Only the benches use
it, as the best arrangement of the same tools Spool's pipeline is measured against; the
pipeline itself encodes in time chunks (spool/media/chunks.py)."""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from spool.media import tools
from spool.media.renditions import DISPLAY_WIDTH, RenditionSpec, rendition_output_options


def ladder_args(
    src: str | Path,
    specs: list[RenditionSpec],
    *,
    audio_kbps: int = 128,
    preset: str = "veryfast",
    has_audio: bool = True,
) -> list[str]:
    """ONE ffmpeg that decodes the source once and feeds every rendition. Same input flags
    and per-output options as ``renditions.rendition_args``, so each file is what the
    per-rendition command would make."""
    if not specs:
        raise ValueError("no renditions requested")
    inp = ffmpeg.input(tools.file_url(src), **tools.INPUT_OPTIONS)
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
                tools.file_url(spec.dst),
                **rendition_output_options(spec.video_kbps, preset, audio_kbps, has_audio),
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
    argv = ladder_args(src, specs, audio_kbps=audio_kbps, preset=preset, has_audio=has_audio)
    await tools.run_ffmpeg(
        argv, limits or tools.Limits(), duration=duration, on_progress=on_progress
    )
