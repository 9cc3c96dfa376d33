"""A rendition's progressive MP4: its chunks joined by stream copy, with the audio track."""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from spool.media import tools


def join_args(listing: Path, audio: Path | None, dst_mp4: Path) -> list[str]:
    video = ffmpeg.input(tools.file_url(listing), f="concat", safe=0, **tools.OWN_CONCAT_INPUT)
    streams = [video["v:0"]]
    if audio is not None:
        streams.append(ffmpeg.input(tools.file_url(audio), **tools.OWN_MP4_INPUT)["a:0"])
    out = ffmpeg.output(
        *streams,
        tools.file_url(dst_mp4),
        c="copy",
        movflags="+faststart",
        map_metadata=-1,
        format="mp4",
    )
    return tools.ffmpeg_argv(out)


async def join_chunks(
    chunk_files: list[Path], audio: Path | None, dst_mp4: Path, *, limits: tools.Limits
) -> None:
    """One rendition's progressive MP4: its chunks in order, joined by stream copy, with the
    audio track muxed in, index first (faststart) so playback starts before the download
    ends."""
    if not chunk_files:
        raise ValueError("join_chunks needs at least one chunk")
    listing = Path(dst_mp4).with_name(Path(dst_mp4).name + ".ffconcat")
    listing.write_text(tools.concat_list([Path(p) for p in chunk_files]))
    try:
        await tools.run_ffmpeg(join_args(listing, audio, Path(dst_mp4)), limits)
    finally:
        tools.remove(listing)
