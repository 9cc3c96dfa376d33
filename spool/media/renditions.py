"""A rendition: one rung of the ladder, a progressive H.264/AAC MP4 of the whole source, and
what every encode of one shares (its size from the display aspect, its bit rates)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from spool.media import tools

# The width of a rendition ``oh`` pixels tall: the source's DISPLAY aspect (dar = storage aspect
# × sample aspect), even, so that square output pixels (setsar=1) show the picture undistorted.
# For square-pixel sources this is exactly what ``scale=-2:oh`` gives.
DISPLAY_WIDTH = "round(oh*dar/2)*2"


@dataclass(frozen=True)
class RenditionSpec:
    """One output of a single-decode ladder: where, how tall, how many kbit/s of video."""

    dst: str | Path
    height: int
    video_kbps: int

    @property
    def name(self) -> str:
        return f"{self.height}p"


def rendition_output_options(
    video_kbps: int, preset: str, audio_kbps: int, has_audio: bool
) -> dict:
    """ffmpeg's output options for a progressive MP4 rendition."""
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
    inp = ffmpeg.input(tools.file_url(src), **tools.INPUT_OPTIONS)
    video = inp["v:0"].filter("scale", DISPLAY_WIDTH, height).filter("setsar", 1)
    streams = [video, inp["a:0"]] if has_audio else [video]
    out = ffmpeg.output(
        *streams,
        tools.file_url(dst),
        **rendition_output_options(video_kbps, preset, audio_kbps, has_audio),
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
    await tools.run_ffmpeg(
        argv, limits or tools.Limits(), duration=duration, on_progress=on_progress
    )
