"""The steps that assemble what the chunks made, by stream copy: each rendition's MP4 and HLS
variant, the storyboard from the chunks' thumbnails, and the master playlist over it all."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.video.common import heartbeating, rendition_result, scratch_dir, thumb_number
from spool.config import Settings
from spool.media import hls, join, live, storyboard, tools
from spool.media import probe as probing
from spool.media.audio import encode_audio
from spool.models.live import LiveAudio, LivePublishInput, LivePublishResult
from spool.models.video import (
    HlsAudioInfo,
    MasterPlaylistInput,
    MasterPlaylistResult,
    PackageInput,
    PackageResult,
    StoryboardInput,
    StoryboardResult,
)
from spool.storage import KeyNotFound, keys
from spool.storage.transfers import Transfers


class PackageActivities:
    """``video.package_rendition``, ``video.make_storyboard`` and ``video.publish_hls``;
    built once per worker."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.settings = settings
        self.files = files
        self.limits = tools.Limits.from_settings(settings)

    @activity.defn(name="video.package_rendition")
    async def package_rendition(self, inp: PackageInput) -> PackageResult:
        """One rendition's chunks joined with the audio into its progressive MP4, and its HLS
        variant: stream copy only."""
        started = time.monotonic()
        name = inp.rendition.name
        async with heartbeating(), scratch_dir() as tmp:
            wanted = [(key, tmp / f"chunk-{i:05d}.mp4") for i, key in enumerate(inp.chunk_keys)]
            if inp.audio_key:
                wanted.append((inp.audio_key, tmp / "audio.m4a"))
            fetched = await self.files.fetch_all(wanted)
            chunk_files = fetched[: len(inp.chunk_keys)]
            audio = fetched[-1] if inp.audio_key else None
            mp4 = tmp / f"{name}.mp4"
            try:
                await join.join_chunks(chunk_files, audio, mp4, limits=self.limits)
                variant = await hls.package_hls(
                    mp4,
                    tmp / "hls",
                    name=name,
                    segment_seconds=inp.segment_seconds,
                    limits=self.limits,
                )
                info = await probing.probe(mp4)
            except tools.MediaError as exc:
                raise ApplicationError(f"{name}: {exc}", type="PackageFailed") from None
            key = keys.rendition_key(inp.video_id, name)
            media_files, playlists = hls_files(inp.video_id, tmp / "hls", name)
            await self.files.put_all([(mp4, key), *media_files], playlists)
        rendition = rendition_result(name, key, info, inp.duration, started)
        return PackageResult(rendition=rendition, variant=variant)

    @activity.defn(name="video.make_storyboard")
    async def make_storyboard(self, inp: StoryboardInput) -> StoryboardResult:
        """The chunks' thumbnails tiled into sprite sheets, and the WebVTT track naming a
        tile per interval; the track is stored last."""
        async with heartbeating(), scratch_dir() as tmp:
            thumbs = await self._fetch_thumbs(inp.video_id, tmp)
            (tmp / "board").mkdir()
            try:
                board = await storyboard.make_storyboard(
                    thumbs,
                    tmp / "board",
                    every=inp.every,
                    columns=inp.columns,
                    rows=inp.rows,
                    sprite_url=sprite_url,
                    limits=self.limits,
                    duration=inp.duration,
                )
            except tools.MediaError as exc:
                raise ApplicationError(f"storyboard: {exc}", type="StoryboardFailed") from None
            await self.files.put_all(
                [
                    (path, keys.storyboard_sprite_key(inp.video_id, n))
                    for n, path in enumerate(board.sprites)
                ]
            )
            vtt_key = keys.storyboard_vtt_key(inp.video_id)
            await self.files.put_bytes(board.vtt.encode("utf-8"), vtt_key)
        return StoryboardResult(
            vtt_key=vtt_key,
            sprites=len(board.sprites),
            tile_width=board.tile_width,
            tile_height=board.tile_height,
            every=board.every,
        )

    async def _fetch_thumbs(self, video_id: str, tmp: Path) -> list[Path]:
        """Every interval's thumbnail, fetched into ``tmp``, in time order: the one made for
        it, or the nearest one made (a chunk whose thumbnails failed leaves a gap)."""
        stored = await self.files.call(self.files.storage.list_prefix, keys.thumbs_prefix(video_id))
        by_number = {thumb_number(Path(key), -1): key for key in stored}
        by_number.pop(-1, None)
        if not by_number:
            raise ApplicationError(
                "storyboard: no thumbnails were stored",
                type="StoryboardFailed",
                non_retryable=True,
            )
        numbers = sorted(by_number)
        fetched = dict(
            zip(
                numbers,
                await self.files.fetch_all(
                    [(by_number[n], tmp / f"thumb-{n:06d}.jpg") for n in numbers]
                ),
                strict=True,
            )
        )
        return [fetched[nearest_number(fetched, n)] for n in range(max(fetched) + 1)]

    @activity.defn(name="video.publish_hls")
    async def publish_hls(self, inp: MasterPlaylistInput) -> MasterPlaylistResult:
        """The audio rendition, then the master playlist over it and the variants stored."""
        audio = None
        if inp.audio_key:
            audio = await self._audio_hls(
                inp.video_id,
                inp.audio_key,
                inp.segment_seconds,
                max(v.start_seconds for v in inp.variants),
            )
        key = keys.hls_master_key(inp.video_id)
        text = hls.master_playlist(inp.variants, audio)
        await self.files.put_bytes(text.encode("utf-8"), key)
        return MasterPlaylistResult(key=key)

    async def _audio_hls(
        self, video_id: str, audio_key: str, segment_seconds: float, video_start: float
    ) -> HlsAudioInfo:
        """The AAC track as the HLS audio rendition, delayed by the variants' start: fMP4
        segments have no edit list to hide x264's reordering delay, so without it HLS
        viewers would hear the sound early. Stored before the master names it."""
        async with scratch_dir() as tmp:
            m4a = await self.files.fetch(audio_key, tmp / "audio.m4a")
            try:
                audio = await hls.package_audio_hls(
                    m4a,
                    tmp / "hls",
                    segment_seconds=segment_seconds,
                    limits=self.limits,
                    video_start=video_start,
                )
            except tools.MediaError as exc:
                raise ApplicationError(f"audio: {exc}", type="PackageFailed") from None
            await self.files.put_all(*hls_files(video_id, tmp / "hls", "audio"))
        return audio


class LiveActivities:
    """``video.publish_live``: the live playlists of a job that plays before it is ready
    (spool/media/live.py); a pipeline step, like the master playlist."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.files = files
        # A viewer waits on every publish (the first is the job's time to playable): its
        # ffmpeg runs at the worker's own CPU priority, above the bulk encodes, as urgent
        # chunks do. A publish is short: a copy or a cut, or the sound's first part encoded.
        self.limits = dataclasses.replace(tools.Limits.from_settings(settings), nice=0)

    @activity.defn(name="video.publish_live")
    async def publish_live(self, inp: LivePublishInput) -> LivePublishResult:
        """The chunks appended to the live playlists: the rendition's, the audio's as far as
        the pictures reach (the track cut on the first publish), then the master, each
        stored after what it names."""
        if not inp.chunks:
            raise ApplicationError("no chunk to publish", type="LiveFailed", non_retryable=True)
        video_path = f"{inp.rendition}/{live.PLAYLIST}"
        published = await self._read(inp.video_id, video_path) if inp.first_index else []
        entries = live.appended(published, inp.chunks, inp.previous_config)
        seconds = live.reach(entries)
        target = live.target_seconds(inp.segment_seconds)
        texts = [(live.media_playlist(entries, target=target, complete=inp.complete), video_path)]
        audio = inp.audio
        if inp.audio_key or inp.source_key:
            audio, cut = await self._audio_cut(inp, seconds)
            shown = live.audio_entries(cut, seconds, inp.complete)
            texts.append(
                (
                    live.media_playlist(shown, target=target, complete=inp.complete),
                    f"{hls.AUDIO_PLAYLIST_DIR}/{live.PLAYLIST}",
                )
            )
        for text, path in [*texts, (live.master_playlist(inp, audio), "master.m3u8")]:
            await self.files.put_bytes(text.encode("utf-8"), keys.live_key(inp.video_id, path))
        return LivePublishResult(
            master_key=keys.live_master_key(inp.video_id),
            audio=audio,
            seconds=round(seconds, 3),
            segments=len(entries),
        )

    async def _read(self, video_id: str, path: str) -> list[live.Entry]:
        """What a live playlist stored lists; nothing if none is stored yet."""
        try:
            raw = await self.files.call(
                self.files.storage.read_bytes, keys.live_key(video_id, path)
            )
        except KeyNotFound:
            return []
        return live.read_playlist(raw.decode("utf-8"))

    async def _audio_cut(
        self, inp: LivePublishInput, seconds: float
    ) -> tuple[LiveAudio, list[live.Entry]]:
        """The audio track's live segments as far as the pictures reach (``seconds``): cut
        and stored by the first publish, read back by the others, cut again further from the
        start when what is stored does not reach (live.audio_cut_until: the first publish of
        a long upload reads its first seconds, not the whole file). Segments cut again are
        the same bytes under the same names."""
        cut_path = f"{hls.AUDIO_PLAYLIST_DIR}/{live.AUDIO_CUT}"
        stored = await self._read(inp.video_id, cut_path)
        if (
            stored
            and inp.audio is not None
            and live.audio_covers(stored, inp.audio, seconds, inp.complete)
        ):
            return inp.audio, stored
        before = inp.audio.cut_until if stored and inp.audio is not None else None
        until = None if inp.complete else live.audio_cut_until(seconds, inp.segment_seconds, before)
        async with heartbeating(), scratch_dir() as tmp, contextlib.AsyncExitStack() as stack:
            try:
                track, untrusted = await self._live_track(inp, until, tmp, stack)
                audio, cut = await live.cut_audio(
                    track,
                    tmp / "audio",
                    segment_seconds=inp.segment_seconds,
                    lead=inp.chunks[0].lead_seconds,
                    limits=self.limits,
                    untrusted=untrusted,
                    until=until,
                )
            except tools.MediaError as exc:
                raise ApplicationError(f"live audio: {exc}", type="LiveFailed") from None
            folder = hls.AUDIO_PLAYLIST_DIR
            await self.files.put_all(
                [
                    (path, keys.live_key(inp.video_id, f"{folder}/{path.name}"))
                    for path in live.cut_files(tmp / "audio")
                ],
                [(tmp / "audio" / live.AUDIO_CUT, keys.live_key(inp.video_id, cut_path))],
            )
        return audio, cut

    async def _live_track(
        self,
        inp: LivePublishInput,
        until: float | None,
        tmp: Path,
        stack: contextlib.AsyncExitStack,
    ) -> tuple[Path, bool]:
        """The AAC track the live audio is cut from, and whether it is the upload itself:
        the upload's own AAC; its other sound encoded as far as ``until`` (all of it: None),
        as the whole track is; or the whole track once it is made."""
        if not inp.source_key:
            assert inp.audio_key is not None
            return await self.files.fetch(inp.audio_key, tmp / "audio.m4a"), False
        src = await stack.enter_async_context(self.files.source(inp.source_key, tmp))
        if not inp.encode_kbps:
            return src, True
        length = inp.duration if until is None else min(until, inp.duration or until)
        part = tmp / "part.m4a"
        await encode_audio(
            src,
            part,
            audio_kbps=inp.encode_kbps,
            limits=self.limits,
            on_progress=None,
            duration=length or None,
            part=until is not None,
        )
        return part, False


def hls_files(
    video_id: str, out_dir: Path, folder: str
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Every file a packager wrote, keyed by its path under the master playlist: (init and
    segments, the media playlist), so the playlist is stored only once its segments are."""
    files = [
        (p, keys.hls_key(video_id, f"{folder}/{p.relative_to(out_dir).as_posix()}"))
        for p in sorted(p for p in out_dir.rglob("*") if p.is_file())
    ]
    return (
        [f for f in files if f[0].suffix != ".m3u8"],
        [f for f in files if f[0].suffix == ".m3u8"],
    )


def nearest_number(present: dict[int, Any], number: int) -> int:
    """The thumbnail shown for ``number``: itself, or the nearest one made (a chunk whose
    thumbnails failed leaves a gap; the track keeps one cue per interval)."""
    return min(present, key=lambda n: (abs(n - number), n))


def sprite_url(number: int) -> str:
    """A sprite's URL relative to the storyboard track (/v1/videos/{id}/storyboard.vtt)."""
    return f"storyboard/{number}.jpg"
