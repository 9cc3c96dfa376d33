"""Video activities: probe, renditions, poster, audio, Whisper, records and the owner's notice;
for chunked jobs the plan, the chunks, the AAC track, the packages (MP4 + HLS variant), the
storyboard and the master playlist.

Each activity fetches its input from object storage into a scratch directory and puts its
output back under a final key (temporary name, then an atomic move), so any step can run on
any worker and a cancelled or failed step leaves nothing behind under a final key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spool import scratch, whisper
from spool.config import Settings
from spool.db import get_engine
from spool.db.video import ensure_video, replace_caption_segments, update_video
from spool.media import (
    audio,
    chunks,
    hls,
    join,
    keyframes,
    poster,
    probe,
    renditions,
    storyboard,
    tools,
)
from spool.models.chunks import output_fps, plan_chunks, snap_to_keyframes
from spool.models.common import FINAL_JOB_STATES, INVALID_VIDEO, JobState
from spool.models.video import (
    AudioTrackInput,
    AudioTrackResult,
    ChunkInput,
    ChunkResult,
    EncodingPlan,
    EncodingPlanInput,
    ExtractAudioInput,
    ExtractAudioResult,
    HlsAudioInfo,
    MasterPlaylistInput,
    MasterPlaylistResult,
    NotifyOwnerInput,
    PackageInput,
    PackageResult,
    PosterInput,
    PosterResult,
    ProbeInput,
    ProbeResult,
    RecordCaptionsInput,
    RecordVideoInput,
    RenditionPlan,
    RenditionResult,
    StoryboardInput,
    StoryboardResult,
    TranscribeInput,
    TranscribeResult,
    rendition_name,
)
from spool.notify import make_notifier, notify_once
from spool.storage import KeyNotFound, ObjectInfo, StorageUnavailable, keys, open_storage
from spool.storage.cache import ObjectCache

log = logging.getLogger("spool.activities.video")
# Object-store transfers one step runs at once (chunk files, segments, thumbnails).
TRANSFERS = 4
# The folder, under a worker's scratch root, of its cache of uploads (spool/storage/cache.py).
SOURCE_CACHE_PREFIX = "spool-sources-"

HEARTBEAT_EVERY_SECONDS = 1.0
# ffprobe reads headers and a few packets: far less than this, whatever the upload.
PROBE_TIMEOUT_SECONDS = 120


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_VIDEO, non_retryable=True)


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[Callable[[float], None]]:
    """Heartbeat every second with the latest percent; yields the setter.

    Heartbeats are what deliver a cancel to an async activity (as CancelledError) and what lets
    the server notice a dead worker within the heartbeat timeout.
    """
    state = {"percent": 0.0}

    def set_percent(percent: float) -> None:
        state["percent"] = round(float(percent), 1)

    async def beat() -> None:
        while True:
            activity.heartbeat({"percent": state["percent"]})
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield set_percent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def scratch_dir() -> AsyncIterator[Path]:
    path = await asyncio.to_thread(scratch.new_dir, "spool-video-")
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


class VideoActivities:
    """Built once per worker; its bound methods are the registered activities."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = open_storage(settings)
        self.engine = get_engine(settings)
        self.notifier = make_notifier(settings)
        self.limits = tools.Limits.from_settings(settings)
        # The captions' audio is waited for by a transcription: no lower priority for it.
        self.captions_limits = dataclasses.replace(self.limits, nice=0)
        self.sources = ObjectCache(
            max_bytes=settings.source_cache_bytes,
            directory=lambda: scratch.new_dir(SOURCE_CACHE_PREFIX),
            max_idle_seconds=settings.source_cache_idle_seconds,
        )

    def pipeline_activities(self) -> list[Callable]:
        return [
            self.probe,
            self.record,
            self.record_captions,
            self.notify_owner,
            self.plan_encoding,
            self.publish_hls,
        ]

    def media_activities(self) -> list[Callable]:
        return [
            self.extract_poster,
            self.encode_chunk,
            self.encode_audio,
            self.package_rendition,
            self.make_storyboard,
        ]

    def captions_activities(self) -> list[Callable]:
        return [self.extract_audio, self.transcribe]

    async def _fetch(self, key: str, dest: Path) -> Path:
        await self._storage(self.storage.get_to, key, dest)
        return dest

    @contextlib.asynccontextmanager
    async def _source(
        self, key: str, tmp: Path, info: ObjectInfo | None = None
    ) -> AsyncIterator[Path]:
        """The upload, from this process's cache of sources: the chunks, audio track, poster
        and captions' audio a worker makes of one video download it once between them. One
        larger than the whole cache (SPOOL_SOURCE_CACHE_BYTES) is fetched into ``tmp``.
        ``info``: the object's stat, when the caller has just read it."""
        info = info or await self._storage(self.storage.stat, key)
        if not self.sources.fits(info.size):
            yield await self._fetch(key, tmp / "source")
            return
        async with self.sources.open(key, info.etag, lambda dest: self._fetch(key, dest)) as path:
            yield path

    async def _fetch_all(self, pairs: list[tuple[str, Path]]) -> list[Path]:
        """Objects to local files (key, destination), TRANSFERS at a time, in order."""
        return await self._transfer([(self._fetch, key, dest) for key, dest in pairs])

    async def _put_all(self, *groups: list[tuple[Path, str]]) -> None:
        """Store files under their keys, TRANSFERS at a time, each group once the one before
        it is stored (an HLS playlist after its segments). A cancel arriving meanwhile waits
        for the uploads in flight to end (a thread cannot be interrupted) and starts no more:
        nothing lands under a key once the step has acknowledged its cancel, so the job's
        final record can clear work/."""
        stop = asyncio.Event()

        async def put_groups() -> None:
            for group in groups:  # once stopped, _transfer starts none of a group's calls
                await self._transfer(
                    [(self._storage, self.storage.put_file, path, key) for path, key in group],
                    stop=stop,
                )

        upload = asyncio.ensure_future(put_groups())
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            stop.set()  # transfers not started yet are skipped; running ones end
            with contextlib.suppress(Exception):
                await upload
            raise

    @staticmethod
    async def _transfer(
        calls: list[tuple[Any, ...]], *, stop: asyncio.Event | None = None
    ) -> list[Any]:
        """Run ``(coroutine function, *args)`` calls TRANSFERS at a time, results in order;
        once ``stop`` is set, calls not started yet are skipped (None). Every call has ended
        when this returns or raises (the first error, once all are done): an object store is
        far from the disk, so one transfer at a time left most of a step's I/O time waiting
        on round trips."""
        gate = asyncio.Semaphore(TRANSFERS)

        async def run(call: Any, *args: Any) -> Any:
            async with gate:
                if stop is not None and stop.is_set():
                    return None
                return await call(*args)

        results = await asyncio.gather(*(run(*call) for call in calls), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def _storage(self, call: Callable[..., Any], *args: Any) -> Any:
        """A storage call that waits out an outage of the store (restart, network blip)
        instead of spending the step's attempts on it: heartbeats go on meanwhile, so a cancel
        still arrives. Past settings.storage_outage_seconds it fails as a retryable error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.storage_outage_seconds
        delay = 0.5
        while True:
            try:
                return await asyncio.to_thread(call, *args)
            except StorageUnavailable as exc:
                if loop.time() + delay > deadline:
                    raise ApplicationError(
                        f"object storage unavailable: {exc}", type="StorageUnavailable"
                    ) from None
                log.warning("object storage unavailable, retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # --- probe ---------------------------------------------------------------------------

    @activity.defn(name="video.probe")
    async def probe(self, inp: ProbeInput) -> ProbeResult:
        s = self.settings
        try:
            stored = await self._storage(self.storage.stat, inp.source_key)
        except KeyNotFound:
            raise invalid(f"The upload {inp.source_key} is missing from storage.") from None
        # Refused before fetching when storage already says so, and again for the bytes
        # actually fetched: an object that grew in between is judged by what was read.
        _refuse_size(stored.size, s.max_upload_bytes)
        limits = tools.Limits(
            timeout_seconds=PROBE_TIMEOUT_SECONDS, memory_limit_mb=s.ffmpeg_memory_limit_mb
        )
        async with (
            heartbeating(),
            scratch_dir() as tmp,
            self._source(inp.source_key, tmp, stored) as src,
        ):
            _refuse_size((await asyncio.to_thread(src.stat)).st_size, s.max_upload_bytes)
            try:
                result = await probe.probe(src, limits)
            except tools.MediaTimeout:
                raise invalid(
                    f"Reading this file's header took longer than "
                    f"{PROBE_TIMEOUT_SECONDS} s; it is not a video Spool can "
                    "process."
                ) from None
            except tools.MediaError as exc:
                head = await asyncio.to_thread(tools.file_head, src)
                raise invalid(probe.unreadable_reason(exc.stderr, head)) from None
            _refuse_streams(result, s)
            # Only now, with every limit met, are pictures decoded: a header may declare a
            # picture size (or a codec) that its packets do not hold.
            try:
                frames = await probe.decoded_frame_count(src, limits)
            except tools.MediaError:
                frames = 0
            if frames == 0:
                raise invalid(
                    f"The {result.video_codec} video stream declares "
                    f"{result.width}x{result.height} pictures, but none of its "
                    "first packets decodes: the file is damaged or its header "
                    "does not match its data."
                )
            await self._store_keyframes(inp.video_id, src, limits)
        return result

    async def _store_keyframes(self, video_id: str, src: Path, limits: tools.Limits) -> None:
        """The source's keyframe times, for the plan to cut chunks on (plan_encoding). Only
        an optimisation: a source whose keyframes cannot be listed is cut on the segment
        grid, so a failure here is not the upload's fault and stores nothing."""
        times = await keyframes.keyframe_times(src, limits)
        if times:
            await self._storage(
                self.storage.put_bytes,
                json.dumps(times).encode("ascii"),
                keys.keyframes_key(video_id),
            )

    async def _stored_keyframes(self, video_id: str) -> list[float]:
        """What the probe stored; nothing for a job probed before it stored keyframes."""
        try:
            raw = await self._storage(self.storage.read_bytes, keys.keyframes_key(video_id))
            times = json.loads(raw)
        except (KeyNotFound, ValueError):
            return []
        if not isinstance(times, list):
            return []
        return [float(t) for t in times if isinstance(t, int | float)]

    # --- media ---------------------------------------------------------------------------

    @activity.defn(name="video.extract_poster")
    async def extract_poster(self, inp: PosterInput) -> PosterResult:
        async with heartbeating(), scratch_dir() as tmp, self._source(inp.source_key, tmp) as src:
            out = tmp / "poster.jpg"
            await poster.extract_poster(src, out, inp.at_seconds, self.limits)
            info = await probe.probe(src)
            key = keys.poster_key(inp.video_id)
            await self._storage(self.storage.put_file, out, key)
            size = await self._storage(self.storage.size, key)
        return PosterResult(key=key, width=info.width, height=info.height, size_bytes=size)

    # --- chunked encoding (docs/pipelines.md) ---------------------------------------------

    @activity.defn(name="video.plan_encoding")
    async def plan_encoding(self, inp: EncodingPlanInput) -> EncodingPlan:
        """This worker's settings turned into the job's plan, kept in its history."""
        s = self.settings
        fps = output_fps(inp.probe.fps)
        try:
            spans = plan_chunks(
                inp.probe.duration,
                chunk_seconds=s.chunk_seconds,
                segment_seconds=s.hls_segment_seconds,
            )
        except ValueError as exc:
            raise invalid(f"The video cannot be cut into chunks: {exc}") from None
        if len(spans) > 1:
            spans = snap_to_keyframes(
                spans,
                await self._stored_keyframes(inp.video_id),
                fps=fps,
                segment_seconds=s.hls_segment_seconds,
            )
        return EncodingPlan(
            chunks=spans,
            renditions=[
                RenditionPlan(rendition_name(h), h, self._video_kbps(h)) for h in inp.heights
            ],
            fps=fps,
            segment_seconds=s.hls_segment_seconds,
            audio_kbps=s.audio_bitrate_kbps,
            thumb_every=thumb_interval(s.storyboard_seconds, s.hls_segment_seconds),
            thumb_width=s.storyboard_thumb_width,
            storyboard_columns=s.storyboard_columns,
            storyboard_rows=s.storyboard_rows,
        )

    def _video_kbps(self, height: int) -> int:
        ladder = self.settings.bitrate_ladder
        return ladder.get(height) or _nearest_bitrate(ladder, height)

    def chunk_specs(self, inp: ChunkInput, out_dir: Path) -> list[renditions.RenditionSpec]:
        """Where each rendition of a chunk is encoded to, how tall and how many kbit/s."""
        return [
            renditions.RenditionSpec(out_dir / f"{r.name}.mp4", r.height, r.video_kbps)
            for r in inp.renditions
        ]

    @activity.defn(name="video.encode_chunk")
    async def encode_chunk(self, inp: ChunkInput) -> ChunkResult:
        """One time chunk of every rendition from one decode (plus its thumbnails)."""
        started = time.monotonic()
        c = inp.chunk
        async with (
            heartbeating() as set_percent,
            scratch_dir() as tmp,
            self._source(inp.source_key, tmp) as src,
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
                    limits=self.limits,
                    on_progress=set_percent,
                )
            except tools.MediaError as exc:
                raise ApplicationError(
                    f"chunk {c.index} ({c.start:g}-{c.end:g} s): {exc}", type="EncodeFailed"
                ) from None
            if out.thumbs_error:
                log.warning("chunk %d made no thumbnails: %s", c.index, out.thumbs_error)
            files = {name: keys.chunk_key(inp.video_id, c.index, name) for name in out.files}
            first = round(c.start / inp.thumb_every) if inp.thumb_every else 0
            thumbs = [
                (path, keys.thumb_key(inp.video_id, c.index, thumb_number(path, first + i)))
                for i, path in enumerate(out.thumbs)
            ]
            await self._put_all([(path, files[name]) for name, path in out.files.items()] + thumbs)
        return ChunkResult(
            index=c.index,
            files=files,
            failed=dict(out.failed),
            thumbs=len(thumbs),
            seconds_taken=round(time.monotonic() - started, 2),
        )

    @activity.defn(name="video.encode_audio")
    async def encode_audio(self, inp: AudioTrackInput) -> AudioTrackResult:
        """The whole source's AAC track, muxed into every MP4. Its HLS rendition is cut by
        the hls step, once the variants' start is known (publish_hls)."""
        async with (
            heartbeating() as set_percent,
            scratch_dir() as tmp,
            self._source(inp.source_key, tmp) as src,
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
            await self._storage(self.storage.put_file, m4a, key)
        return AudioTrackResult(key=key)

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
            fetched = await self._fetch_all(wanted)
            chunks = fetched[: len(inp.chunk_keys)]
            audio = fetched[-1] if inp.audio_key else None
            mp4 = tmp / f"{name}.mp4"
            try:
                await join.join_chunks(chunks, audio, mp4, limits=self.limits)
                variant = await hls.package_hls(
                    mp4,
                    tmp / "hls",
                    name=name,
                    segment_seconds=inp.segment_seconds,
                    limits=self.limits,
                )
                info = await probe.probe(mp4)
            except tools.MediaError as exc:
                raise ApplicationError(f"{name}: {exc}", type="PackageFailed") from None
            key = keys.rendition_key(inp.video_id, name)
            media_files, playlists = self._hls_files(inp.video_id, tmp / "hls", name)
            await self._put_all([(mp4, key), *media_files], playlists)
        duration = info.duration or inp.duration
        rendition = RenditionResult(
            name=name,
            key=key,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            bitrate_kbps=int(info.size_bytes * 8 / duration / 1000) if duration else 0,
            duration=duration,
            seconds_taken=round(time.monotonic() - started, 2),
        )
        return PackageResult(rendition=rendition, variant=variant)

    @staticmethod
    def _hls_files(
        video_id: str, out_dir: Path, folder: str
    ) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
        """Every file a packager wrote, keyed by its path under the master playlist: (init
        and segments, the media playlist), so the playlist is stored only once its segments
        are."""
        files = [
            (p, keys.hls_key(video_id, f"{folder}/{p.relative_to(out_dir).as_posix()}"))
            for p in sorted(p for p in out_dir.rglob("*") if p.is_file())
        ]
        return (
            [f for f in files if f[0].suffix != ".m3u8"],
            [f for f in files if f[0].suffix == ".m3u8"],
        )

    @activity.defn(name="video.make_storyboard")
    async def make_storyboard(self, inp: StoryboardInput) -> StoryboardResult:
        """The chunks' thumbnails tiled into sprite sheets, and the WebVTT track naming a
        tile per interval; the track is stored last."""
        async with heartbeating(), scratch_dir() as tmp:
            stored = await self._storage(self.storage.list_prefix, keys.thumbs_prefix(inp.video_id))
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
                    await self._fetch_all(
                        [(by_number[n], tmp / f"thumb-{n:06d}.jpg") for n in numbers]
                    ),
                    strict=True,
                )
            )
            thumbs = [fetched[nearest_number(fetched, n)] for n in range(max(fetched) + 1)]
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
            await self._put_all(
                [
                    (path, keys.storyboard_sprite_key(inp.video_id, n))
                    for n, path in enumerate(board.sprites)
                ]
            )
            vtt_key = keys.storyboard_vtt_key(inp.video_id)
            await self._storage(self.storage.put_bytes, board.vtt.encode("utf-8"), vtt_key)
        return StoryboardResult(
            vtt_key=vtt_key,
            sprites=len(board.sprites),
            tile_width=board.tile_width,
            tile_height=board.tile_height,
            every=board.every,
        )

    @activity.defn(name="video.publish_hls")
    async def publish_hls(self, inp: MasterPlaylistInput) -> MasterPlaylistResult:
        """The audio rendition, then the master playlist over it and the variants stored."""
        audio = None
        if inp.audio_key:
            audio = await self._audio_hls(inp, max(v.start_seconds for v in inp.variants))
        key = keys.hls_master_key(inp.video_id)
        text = hls.master_playlist(inp.variants, audio)
        await self._storage(self.storage.put_bytes, text.encode("utf-8"), key)
        return MasterPlaylistResult(key=key)

    async def _audio_hls(self, inp: MasterPlaylistInput, video_start: float) -> HlsAudioInfo:
        """The AAC track as the HLS audio rendition, delayed by the variants' start: fMP4
        segments have no edit list to hide x264's reordering delay, so without it HLS
        viewers would hear the sound early. Stored before the master names it."""
        async with scratch_dir() as tmp:
            m4a = await self._fetch(inp.audio_key, tmp / "audio.m4a")
            try:
                audio = await hls.package_audio_hls(
                    m4a,
                    tmp / "hls",
                    segment_seconds=inp.segment_seconds,
                    limits=self.limits,
                    video_start=video_start,
                )
            except tools.MediaError as exc:
                raise ApplicationError(f"audio: {exc}", type="PackageFailed") from None
            await self._put_all(*self._hls_files(inp.video_id, tmp / "hls", "audio"))
        return audio

    # --- captions ------------------------------------------------------------------------

    @activity.defn(name="video.extract_audio")
    async def extract_audio(self, inp: ExtractAudioInput) -> ExtractAudioResult:
        async with (
            heartbeating() as set_percent,
            scratch_dir() as tmp,
            self._source(inp.source_key, tmp) as src,
        ):
            info = await probe.probe(src)
            out = tmp / "audio.wav"
            await audio.extract_audio_16k_mono(
                src,
                out,
                duration=info.duration or None,
                limits=self.captions_limits,
                on_progress=set_percent,
            )
            key = keys.audio_key(inp.video_id)
            await self._storage(self.storage.put_file, out, key)
        return ExtractAudioResult(audio_key=key, duration=info.duration)

    @activity.defn(name="video.transcribe")
    async def transcribe(self, inp: TranscribeInput) -> TranscribeResult:
        language = inp.language or self.settings.whisper_language
        async with heartbeating() as set_percent, scratch_dir() as tmp:
            wav = await self._fetch(inp.audio_key, tmp / "audio.wav")
            cancel = threading.Event()

            def on_segment(_seg: whisper.Segment, end: float) -> None:
                if inp.duration:
                    set_percent(min(99.0, end / inp.duration * 100))

            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(
                None,
                lambda: whisper.transcribe(
                    wav,
                    settings=self.settings,
                    language=language,
                    cancel_event=cancel,
                    on_segment=on_segment,
                ),
            )
            try:
                segments = await asyncio.shield(future)
            except asyncio.CancelledError:
                # Whisper stops at the next segment; wait for it so the thread is not left
                # running, then let the cancel through.
                cancel.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(future), timeout=30)
                raise
            except FileNotFoundError as exc:
                raise ApplicationError(
                    f"Whisper model unavailable: {exc}", type="WhisperModelMissing"
                ) from None
            set_percent(100.0)
            files = {
                "vtt": (keys.captions_key(inp.video_id, language, "vtt"), whisper.to_vtt(segments)),
                "srt": (keys.captions_key(inp.video_id, language, "srt"), whisper.to_srt(segments)),
                "json": (
                    keys.transcript_key(inp.video_id, language),
                    json.dumps(
                        {
                            "language": language,
                            "text": " ".join(seg.text for seg in segments),
                            "segments": [asdict(seg) for seg in segments],
                        },
                        ensure_ascii=False,
                        indent=1,
                    ),
                ),
            }
            for key, text in files.values():
                await self._storage(self.storage.put_bytes, text.encode("utf-8"), key)
            await asyncio.to_thread(
                replace_caption_segments,
                self.engine,
                inp.video_id,
                [asdict(seg) for seg in segments],
            )
        excerpt = " ".join(seg.text for seg in segments)[:300]
        return TranscribeResult(
            vtt_key=files["vtt"][0],
            srt_key=files["srt"][0],
            transcript_key=files["json"][0],
            segment_count=len(segments),
            language=language,
            excerpt=excerpt,
        )

    # --- records and notice ---------------------------------------------------------------

    @activity.defn(name="video.record")
    async def record(self, inp: RecordVideoInput) -> None:
        await asyncio.to_thread(self._record_video, inp)

    def _record_video(self, inp: RecordVideoInput) -> None:
        # States reach the database as plain strings (str() of a StrEnum is its value).
        ensure_video(
            self.engine, inp.video_id, inp.owner_id, str(inp.status or JobState.PROCESSING)
        )
        values: dict[str, Any] = {}
        if inp.status is not None:
            values["status"] = str(inp.status)
        if inp.metadata is not None:
            values["metadata"] = asdict(inp.metadata)
        if inp.renditions is not None:
            values["renditions"] = [asdict(r) for r in inp.renditions]
        if inp.poster_key is not None:
            values["poster_key"] = inp.poster_key
        if inp.captions_state is not None:
            values["captions_state"] = str(inp.captions_state)
        if inp.captions_language is not None:
            values["captions_language"] = inp.captions_language
        if inp.errors:
            values["merge_errors"] = inp.errors
        if inp.hls_key is not None:
            values["hls_key"] = inp.hls_key
        if inp.storyboard_key is not None:
            values["storyboard_key"] = inp.storyboard_key
        update_video(self.engine, inp.video_id, **values)
        if inp.status in FINAL_JOB_STATES:
            # Nothing intermediate outlives the job: a cancelled or failed captions branch
            # never reached record_captions, which drops the WAV on success; chunks and
            # thumbnails are kept until here so that a retried package or storyboard step
            # still finds them. Every step has stopped by now (cancels are waited for).
            self.storage.delete(keys.audio_key(inp.video_id))
            self.storage.delete_prefix(keys.work_prefix(inp.video_id))

    @activity.defn(name="video.record_captions")
    async def record_captions(self, inp: RecordCaptionsInput) -> None:
        values: dict[str, Any] = {
            "captions_state": str(inp.state),
            "captions_language": inp.language,
        }
        if inp.transcript is not None:
            t = inp.transcript
            values["captions"] = {
                "vtt": t.vtt_key,
                "srt": t.srt_key,
                "transcript": t.transcript_key,
                "segments": t.segment_count,
            }
        if inp.error:
            values["merge_errors"] = {"captions": inp.error}
        await asyncio.to_thread(update_video, self.engine, inp.video_id, **values)
        # The 16 kHz WAV only feeds Whisper: once the captions are written (or have failed for
        # good) it is dropped. A repeated delete is a no-op, so a retry is harmless; deleting
        # here rather than in video.transcribe keeps a retried transcribe able to read it.
        await self._storage(self.storage.delete, keys.audio_key(inp.video_id))

    @activity.defn(name="video.notify_owner")
    async def notify_owner(self, inp: NotifyOwnerInput) -> int:
        payload = {"video_id": inp.video_id, "state": str(inp.state), **inp.payload}
        outcome = await asyncio.to_thread(
            notify_once,
            self.engine,
            self.notifier,
            event_id=f"video-done:{inp.video_id}",
            event_type=f"video.{inp.state}",
            recipients=[inp.owner_id],
            payload=payload,
            callback_url=inp.callback_url,
        )
        return outcome.delivered


def _size_text(n: int) -> str:
    return f"{n:,} bytes" if n < 10_000_000 else f"{n / 1e6:,.0f} MB"


def _refuse_size(size: int, limit: int) -> None:
    if size == 0:
        raise invalid("The uploaded file is empty (0 bytes). Upload the video again.")
    if size > limit:
        raise invalid(f"The file is {_size_text(size)}; the limit is {_size_text(limit)}.")


def _refuse_streams(result: ProbeResult, s: Settings) -> None:
    """The probe's findings against the settings' limits (docs/ARCHITECTURE.md, "Untrusted
    input"), each refusal naming what was found and what is allowed."""
    if not result.has_video:
        if result.video_codec:
            raise invalid(
                f"The {result.video_codec} video stream has no picture size "
                f"({result.width}x{result.height}): the file is damaged."
            )
        if result.has_audio:
            raise invalid(
                "The file has audio but no video stream. Upload a video file; "
                "audio-only files are not supported."
            )
        raise invalid("The file has no video stream.")
    if result.duration <= 0:
        raise invalid(
            "The video has no duration (zero-length streams, or none recorded in "
            "the file): it is empty, damaged or a raw stream without a container."
        )
    if result.duration > s.max_duration_seconds:
        raise invalid(
            f"The video is {result.duration:.1f} s long; the limit is "
            f"{s.max_duration_seconds:.0f} s."
        )
    # Limits hold in either orientation: a portrait phone clip is the landscape one turned.
    long_side, short_side = sorted((result.width, result.height), reverse=True)
    if long_side > max(s.max_width, s.max_height) or short_side > min(s.max_width, s.max_height):
        raise invalid(
            f"The video is {result.width}x{result.height}; the limit is "
            f"{s.max_width}x{s.max_height} (either orientation)."
        )


def thumb_interval(wanted: float, segment_seconds: float) -> float:
    """The storyboard interval nearest ``wanted`` that divides a segment (at most one): chunks
    start on segment boundaries, so every chunk's thumbnails then fall on one time grid."""
    return segment_seconds / max(1, round(segment_seconds / wanted))


def thumb_number(path: Path, default: int) -> int:
    """The number in a thumbnail's name (``thumb-000012.jpg``: 12): its time is that many
    intervals from the start."""
    digits = re.search(r"(\d+)$", path.stem)
    return int(digits[1]) if digits else default


def nearest_number(present: dict[int, Any], number: int) -> int:
    """The thumbnail shown for ``number``: itself, or the nearest one made (a chunk whose
    thumbnails failed leaves a gap; the track keeps one cue per interval)."""
    return min(present, key=lambda n: (abs(n - number), n))


def sprite_url(number: int) -> str:
    """A sprite's URL relative to the storyboard track (/v1/videos/{id}/storyboard.vtt)."""
    return f"storyboard/{number}.jpg"


def _nearest_bitrate(ladder: dict[int, int], height: int) -> int:
    """Bitrate for an off-ladder height: the nearest rung's, scaled by pixel count."""
    rung = min(ladder, key=lambda h: abs(h - height))
    return max(200, int(ladder[rung] * (height / rung) ** 2))
