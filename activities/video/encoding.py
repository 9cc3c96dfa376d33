"""The steps that decode the upload on the media queue: the time chunks (every rendition and
the storyboard's thumbnails from one decode), the AAC track and the poster."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.video.common import (
    heartbeating,
    scratch_dir,
    thumb_number,
)
from spool.config import Settings
from spool.media import audio, chunks, live, poster, tools
from spool.media import probe as probing
from spool.models.video import (
    AudioTrackInput,
    AudioTrackResult,
    ChunkInput,
    ChunkResult,
    LiveChunk,
    PosterInput,
    PosterResult,
)
from spool.storage import keys
from spool.storage.transfers import Transfers

log = logging.getLogger("spool.activities.video")


class EncodeActivities:
    """``video.encode_chunk``, ``video.encode_audio`` and ``video.extract_poster``; built
    once per worker."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.settings = settings
        self.files = files
        self.limits = tools.Limits.from_settings(settings)

    @activity.defn(name="video.extract_poster")
    async def extract_poster(self, inp: PosterInput) -> PosterResult:
        async with (
            heartbeating(),
            scratch_dir() as tmp,
            self.files.source(inp.source_key, tmp) as src,
        ):
            out = tmp / "poster.jpg"
            await poster.extract_poster(src, out, inp.at_seconds, self.limits)
            info = await probing.probe(src)
            key = keys.poster_key(inp.video_id)
            await self.files.put_file(out, key)
            size = await self.files.call(self.files.storage.size, key)
        return PosterResult(key=key, width=info.width, height=info.height, size_bytes=size)

    def chunk_specs(self, inp: ChunkInput, out_dir: Path) -> list[chunks.RenditionSpec]:
        """Where each rendition of a chunk is encoded to, how tall and how many kbit/s."""
        return [
            chunks.RenditionSpec(out_dir / f"{r.name}.mp4", r.height, r.video_kbps, r.crf)
            for r in inp.renditions
        ]

    @activity.defn(name="video.encode_chunk")
    async def encode_chunk(self, inp: ChunkInput) -> ChunkResult:
        """One time chunk of every rendition from one decode (plus its thumbnails)."""
        started = time.monotonic()
        c = inp.chunk
        limits = dataclasses.replace(self.limits, nice=0) if inp.urgent else self.limits
        async with (
            heartbeating() as set_percent,
            scratch_dir() as tmp,
            self.files.source(inp.source_key, tmp) as src,
        ):
            thumb_dir = tmp / "thumbs" if inp.thumb_every else None
            for folder in (tmp / "out", thumb_dir):
                if folder is not None:
                    folder.mkdir()
            try:
                out = await chunks.encode_chunk(
                    src,
                    c,
                    self.chunk_specs(inp, tmp / "out"),
                    fps=inp.fps,
                    segment_seconds=inp.segment_seconds,
                    preset=self.settings.x264_preset,
                    thumb_every=inp.thumb_every,
                    thumb_width=inp.thumb_width,
                    thumb_dir=thumb_dir,
                    limits=limits,
                    on_progress=set_percent,
                )
            except tools.MediaError as exc:
                raise ApplicationError(
                    f"chunk {c.index} ({c.start:g}-{c.end:g} s): {exc}", type="EncodeFailed"
                ) from None
            cut = await self._cut_live(inp, out, tmp / "live")
            files, thumbs = await self._store_chunk(inp, out, cut)
        return ChunkResult(
            index=c.index,
            files=files,
            failed=dict(out.failed),
            thumbs=len(thumbs),
            seconds_taken=round(time.monotonic() - started, 2),
            live=cut[0] if cut else None,
        )

    async def _cut_live(
        self, inp: ChunkInput, out: chunks.ChunkOutput, out_dir: Path
    ) -> tuple[LiveChunk, list[tuple[Path, str]]] | None:
        """The live rendition's chunk cut into segments, and their keys; None when the job
        has no live playlist, or when the cut failed: the job is then playable only once it
        is ready, which costs no rendition (the chunk itself is kept)."""
        mp4 = out.files.get(inp.live) if inp.live else None
        if mp4 is None or inp.live is None:
            return None
        try:
            cut = await live.cut_chunk(
                mp4, out_dir, index=inp.chunk.index, start=inp.chunk.start, limits=self.limits
            )
        except tools.MediaError as exc:
            log.warning("chunk %d: no live segments: %s", inp.chunk.index, exc)
            return None
        return cut, [
            (path, keys.live_key(inp.video_id, f"{inp.live}/{path.name}"))
            for path in live.cut_files(out_dir)
        ]

    async def _store_chunk(
        self,
        inp: ChunkInput,
        out: chunks.ChunkOutput,
        cut: tuple[LiveChunk, list[tuple[Path, str]]] | None = None,
    ) -> tuple[dict[str, str], list[tuple[Path, str]]]:
        """The chunk's files stored under their keys (its live segments too): (rendition
        name → key, the thumbnails and their keys)."""
        c = inp.chunk
        if out.thumbs_error:
            log.warning("chunk %d made no thumbnails: %s", c.index, out.thumbs_error)
        files = {name: keys.chunk_key(inp.video_id, c.index, name) for name in out.files}
        first = round(c.start / inp.thumb_every) if inp.thumb_every else 0
        thumbs = [
            (path, keys.thumb_key(inp.video_id, c.index, thumb_number(path, first + i)))
            for i, path in enumerate(out.thumbs)
        ]
        segments = cut[1] if cut else []
        await self.files.put_all(
            [(path, files[name]) for name, path in out.files.items()] + thumbs + segments
        )
        return files, thumbs

    @activity.defn(name="video.encode_audio")
    async def encode_audio(self, inp: AudioTrackInput) -> AudioTrackResult:
        """The whole source's AAC track, muxed into every MP4. Its HLS rendition is cut by
        the hls step, once the variants' start is known (publish_hls)."""
        async with (
            heartbeating() as set_percent,
            scratch_dir() as tmp,
            self.files.source(inp.source_key, tmp) as src,
        ):
            m4a = tmp / "audio.m4a"
            try:
                await audio.encode_audio(
                    src,
                    m4a,
                    audio_kbps=inp.audio_kbps,
                    limits=self.limits,
                    on_progress=set_percent,
                    duration=inp.duration or None,
                )
            except tools.MediaError as exc:
                raise ApplicationError(f"audio: {exc}", type="EncodeFailed") from None
            key = keys.audio_track_key(inp.video_id)
            await self.files.put_file(m4a, key)
        return AudioTrackResult(key=key)
