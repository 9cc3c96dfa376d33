"""The storyboard: the chunks' thumbnails tiled into sprite sheets, and the WebVTT track that
points a player's scrub-bar preview at each tile."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from spool.media import tools
from spool.media.chunks import THUMB_QUALITY

THUMB_FORMATS = "image2,jpeg_pipe"
SPRITE_NAME = "%d.jpg"


@dataclass
class Storyboard:
    sprites: list[Path]
    vtt: str
    tile_width: int
    tile_height: int
    every: float


def storyboard_args(listing: Path, out_dir: Path, *, columns: int, rows: int) -> list[str]:
    """The thumbnails, in order, tiled columns × rows per sprite sheet: 0.jpg, 1.jpg, …"""
    inp = ffmpeg.input(tools.file_url(listing), f="concat", safe=0, **tools.OWN_CONCAT_INPUT)
    # Concatenated JPEGs all have pts 0: number them, or the sheets collide at the encoder.
    out = (
        inp["v:0"]
        .filter("setpts", "N/TB")
        .filter("tile", f"{columns}x{rows}")
        .output(
            tools.file_url(out_dir / SPRITE_NAME),
            vcodec="mjpeg",
            format="image2",
            start_number=0,
            **{"q:v": THUMB_QUALITY, "fps_mode": "passthrough"},
        )
    )
    return tools.ffmpeg_argv(out)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def storyboard_vtt(
    count: int,
    *,
    every: float,
    columns: int,
    rows: int,
    tile_width: int,
    tile_height: int,
    sprite_url: Callable[[int], str],
    duration: float,
) -> str:
    """A WebVTT thumbnails track: cue i covers [i*every, (i+1)*every) and shows tile i
    (sheet i // (columns*rows), row-major inside it); the last cue ends at ``duration``."""
    per_sheet = columns * rows
    cues = ["WEBVTT", ""]
    shown = [i for i in range(count) if i * every < duration] or [0]
    for i in shown:
        sheet, place = divmod(i, per_sheet)
        x, y = place % columns * tile_width, place // columns * tile_height
        end = duration if i == shown[-1] else (i + 1) * every
        cues += [
            f"{_timestamp(i * every)} --> {_timestamp(end)}",
            f"{sprite_url(sheet)}#xywh={x},{y},{tile_width},{tile_height}",
            "",
        ]
    return "\n".join(cues)


async def make_storyboard(
    thumbs: list[Path],
    out_dir: Path,
    *,
    every: float,
    columns: int,
    rows: int,
    sprite_url: Callable[[int], str],
    limits: tools.Limits,
    duration: float | None = None,
) -> Storyboard:
    """Sprite sheets of the thumbnails (taken every ``every`` seconds, in time order) and the
    WebVTT track that points a player's scrub-bar preview at each tile. ``duration`` (the
    clip's) ends the last cue; by default it is len(thumbs) × every."""
    if not thumbs:
        raise ValueError("a storyboard needs at least one thumbnail")
    if every <= 0 or columns < 1 or rows < 1:
        raise ValueError(f"bad storyboard grid: every={every!r}, {columns}x{rows}")
    out_dir = tools.make_dir(Path(out_dir))
    first = await tools.stream_info(Path(thumbs[0]), "v:0", limits, formats=THUMB_FORMATS)
    tile_width, tile_height = int(first.get("width") or 0), int(first.get("height") or 0)
    listing = out_dir / "thumbs.ffconcat"
    listing.write_text(tools.concat_list([Path(t) for t in thumbs]))
    try:
        await tools.run_ffmpeg(
            storyboard_args(listing, out_dir, columns=columns, rows=rows), limits
        )
    finally:
        tools.remove(listing)
    sheets = math.ceil(len(thumbs) / (columns * rows))
    vtt = storyboard_vtt(
        len(thumbs),
        every=every,
        columns=columns,
        rows=rows,
        tile_width=tile_width,
        tile_height=tile_height,
        sprite_url=sprite_url,
        duration=len(thumbs) * every if duration is None else duration,
    )
    return Storyboard(
        sprites=[out_dir / (SPRITE_NAME % n) for n in range(sheets)],
        vtt=vtt,
        tile_width=tile_width,
        tile_height=tile_height,
        every=every,
    )
