"""The poster: one picture of the source, as a JPEG."""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from spool.media import tools

POSTER_TIMEOUT_SECONDS = 300


def poster_args(src: str | Path, dst: str | Path, at_seconds: float) -> list[str]:
    inp = ffmpeg.input(tools.file_url(src), ss=f"{max(0.0, at_seconds):.3f}", **tools.INPUT_OPTIONS)
    out = inp["v:0"].output(
        tools.file_url(dst), vframes=1, vcodec="mjpeg", format="image2", update=1, **{"q:v": 3}
    )
    return tools.ffmpeg_argv(out)


async def extract_poster(
    src: str | Path, dst: str | Path, at_seconds: float, limits: tools.Limits | None = None
) -> None:
    limits = limits or tools.Limits(timeout_seconds=POSTER_TIMEOUT_SECONDS)
    await tools.run_ffmpeg(poster_args(src, dst, at_seconds), limits)
    if tools.file_size(dst) == 0 and at_seconds > 0:
        # A seek can land past the only keyframe before the end (MPEG-TS with one long GOP):
        # nothing decodes from there, and every retry would land there again. The first
        # picture is a poster too.
        await tools.run_ffmpeg(poster_args(src, dst, 0.0), limits)
    if tools.file_size(dst) == 0:
        raise tools.MediaError(f"no frame at {at_seconds:.2f} s")
