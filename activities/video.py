"""Video activities: probe, renditions, poster, audio, Whisper, records and the owner's notice.

Each activity fetches its input from object storage into a scratch directory and puts its
output back under a final key (temporary name, then an atomic move), so any step can run on
any worker and a cancelled or failed step leaves nothing behind under a final key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spool import media, scratch, whisper
from spool.config import Settings
from spool.db import get_engine
from spool.db.video import ensure_video, replace_caption_segments, update_video
from spool.models.common import FINAL_JOB_STATES, INVALID_VIDEO, JobState
from spool.models.video import (
    ExtractAudioInput,
    ExtractAudioResult,
    NotifyOwnerInput,
    PosterInput,
    PosterResult,
    ProbeInput,
    ProbeResult,
    RecordCaptionsInput,
    RecordVideoInput,
    RenditionInput,
    RenditionResult,
    TranscribeInput,
    TranscribeResult,
    rendition_name,
)
from spool.notify import make_notifier, notify_once
from spool.storage import KeyNotFound, StorageUnavailable, keys, open_storage

log = logging.getLogger("spool.activities.video")

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
        self.limits = media.Limits.from_settings(settings)

    def pipeline_activities(self) -> list[Callable]:
        return [self.probe, self.record, self.record_captions, self.notify_owner]

    def media_activities(self) -> list[Callable]:
        return [self.transcode_rendition, self.extract_poster]

    def captions_activities(self) -> list[Callable]:
        return [self.extract_audio, self.transcribe]

    async def _fetch(self, key: str, dest: Path) -> Path:
        await self._storage(self.storage.get_to, key, dest)
        return dest

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
                    raise ApplicationError(f"object storage unavailable: {exc}",
                                           type="StorageUnavailable") from None
                log.warning("object storage unavailable, retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # --- probe ---------------------------------------------------------------------------

    @activity.defn(name="video.probe")
    async def probe(self, inp: ProbeInput) -> ProbeResult:
        s = self.settings
        try:
            size = await self._storage(self.storage.size, inp.source_key)
        except KeyNotFound:
            raise invalid(f"The upload {inp.source_key} is missing from storage.") from None
        # Refused before fetching when storage already says so, and again for the bytes
        # actually fetched: an object that grew in between is judged by what was read.
        _refuse_size(size, s.max_upload_bytes)
        limits = media.Limits(timeout_seconds=PROBE_TIMEOUT_SECONDS,
                              memory_limit_mb=s.ffmpeg_memory_limit_mb)
        async with heartbeating(), scratch_dir() as tmp:
            src = await self._fetch(inp.source_key, tmp / "source")
            _refuse_size((await asyncio.to_thread(src.stat)).st_size, s.max_upload_bytes)
            try:
                result = await media.probe(src, limits)
            except media.MediaTimeout:
                raise invalid(f"Reading this file's header took longer than "
                              f"{PROBE_TIMEOUT_SECONDS} s; it is not a video Spool can "
                              "process.") from None
            except media.MediaError as exc:
                head = await asyncio.to_thread(media.file_head, src)
                raise invalid(media.unreadable_reason(exc.stderr, head)) from None
            _refuse_streams(result, s)
            # Only now, with every limit met, are pictures decoded: a header may declare a
            # picture size (or a codec) that its packets do not hold.
            try:
                frames = await media.decoded_frame_count(src, limits)
            except media.MediaError:
                frames = 0
            if frames == 0:
                raise invalid(f"The {result.video_codec} video stream declares "
                              f"{result.width}x{result.height} pictures, but none of its "
                              "first packets decodes: the file is damaged or its header "
                              "does not match its data.")
        return result

    # --- media ---------------------------------------------------------------------------

    @activity.defn(name="video.transcode_rendition")
    async def transcode_rendition(self, inp: RenditionInput) -> RenditionResult:
        s = self.settings
        name = rendition_name(inp.height)
        kbps = s.bitrate_ladder.get(inp.height) or _nearest_bitrate(s.bitrate_ladder, inp.height)
        started = time.monotonic()
        async with heartbeating() as set_percent, scratch_dir() as tmp:
            src = await self._fetch(inp.source_key, tmp / "source")
            out = tmp / f"{name}.mp4"
            await media.transcode_rendition(
                src, out, inp.height, video_kbps=kbps, audio_kbps=s.audio_bitrate_kbps,
                preset=s.x264_preset, has_audio=inp.has_audio, duration=inp.duration or None,
                limits=self.limits, on_progress=set_percent)
            info = await media.probe(out)
            key = keys.rendition_key(inp.video_id, name)
            await self._storage(self.storage.put_file, out, key)
        duration = info.duration or inp.duration
        return RenditionResult(
            name=name, key=key, width=info.width, height=info.height,
            size_bytes=info.size_bytes,
            bitrate_kbps=int(info.size_bytes * 8 / duration / 1000) if duration else 0,
            duration=duration, seconds_taken=round(time.monotonic() - started, 2))

    @activity.defn(name="video.extract_poster")
    async def extract_poster(self, inp: PosterInput) -> PosterResult:
        async with heartbeating(), scratch_dir() as tmp:
            src = await self._fetch(inp.source_key, tmp / "source")
            out = tmp / "poster.jpg"
            await media.extract_poster(src, out, inp.at_seconds, self.limits)
            info = await media.probe(src)
            key = keys.poster_key(inp.video_id)
            await self._storage(self.storage.put_file, out, key)
            size = await self._storage(self.storage.size, key)
        return PosterResult(key=key, width=info.width, height=info.height, size_bytes=size)

    # --- captions ------------------------------------------------------------------------

    @activity.defn(name="video.extract_audio")
    async def extract_audio(self, inp: ExtractAudioInput) -> ExtractAudioResult:
        async with heartbeating() as set_percent, scratch_dir() as tmp:
            src = await self._fetch(inp.source_key, tmp / "source")
            info = await media.probe(src)
            out = tmp / "audio.wav"
            await media.extract_audio_16k_mono(src, out, duration=info.duration or None,
                                               limits=self.limits, on_progress=set_percent)
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
            future = loop.run_in_executor(None, lambda: whisper.transcribe(
                wav, settings=self.settings, language=language, cancel_event=cancel,
                on_segment=on_segment))
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
                raise ApplicationError(f"Whisper model unavailable: {exc}",
                                       type="WhisperModelMissing") from None
            set_percent(100.0)
            files = {
                "vtt": (keys.captions_key(inp.video_id, language, "vtt"),
                        whisper.to_vtt(segments)),
                "srt": (keys.captions_key(inp.video_id, language, "srt"),
                        whisper.to_srt(segments)),
                "json": (keys.transcript_key(inp.video_id, language), json.dumps({
                    "language": language,
                    "text": " ".join(seg.text for seg in segments),
                    "segments": [asdict(seg) for seg in segments],
                }, ensure_ascii=False, indent=1)),
            }
            for key, text in files.values():
                await self._storage(self.storage.put_bytes, text.encode("utf-8"), key)
            await asyncio.to_thread(replace_caption_segments, self.engine, inp.video_id,
                                    [asdict(seg) for seg in segments])
        excerpt = " ".join(seg.text for seg in segments)[:300]
        return TranscribeResult(vtt_key=files["vtt"][0], srt_key=files["srt"][0],
                                transcript_key=files["json"][0], segment_count=len(segments),
                                language=language, excerpt=excerpt)

    # --- records and notice ---------------------------------------------------------------

    @activity.defn(name="video.record")
    async def record(self, inp: RecordVideoInput) -> None:
        await asyncio.to_thread(self._record_video, inp)

    def _record_video(self, inp: RecordVideoInput) -> None:
        # States reach the database as plain strings (str() of a StrEnum is its value).
        ensure_video(self.engine, inp.video_id, inp.owner_id,
                     str(inp.status or JobState.PROCESSING))
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
        update_video(self.engine, inp.video_id, **values)
        if inp.status in FINAL_JOB_STATES:
            # Nothing intermediate outlives the job: a cancelled or failed captions branch
            # never reached record_captions, which drops the WAV on success.
            self.storage.delete(keys.audio_key(inp.video_id))

    @activity.defn(name="video.record_captions")
    async def record_captions(self, inp: RecordCaptionsInput) -> None:
        values: dict[str, Any] = {"captions_state": str(inp.state),
                                  "captions_language": inp.language}
        if inp.transcript is not None:
            t = inp.transcript
            values["captions"] = {"vtt": t.vtt_key, "srt": t.srt_key,
                                  "transcript": t.transcript_key,
                                  "segments": t.segment_count}
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
        if inp.callback_url:
            payload["callback_url"] = inp.callback_url
        outcome = await asyncio.to_thread(
            notify_once, self.engine, self.notifier, event_id=f"video-done:{inp.video_id}",
            event_type=f"video.{inp.state}", recipients=[inp.owner_id], payload=payload)
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
            raise invalid(f"The {result.video_codec} video stream has no picture size "
                          f"({result.width}x{result.height}): the file is damaged.")
        if result.has_audio:
            raise invalid("The file has audio but no video stream. Upload a video file; "
                          "audio-only files are not supported.")
        raise invalid("The file has no video stream.")
    if result.duration <= 0:
        raise invalid("The video has no duration (zero-length streams, or none recorded in "
                      "the file): it is empty, damaged or a raw stream without a container.")
    if result.duration > s.max_duration_seconds:
        raise invalid(f"The video is {result.duration:.1f} s long; the limit is "
                      f"{s.max_duration_seconds:.0f} s.")
    # Limits hold in either orientation: a portrait phone clip is the landscape one turned.
    long_side, short_side = sorted((result.width, result.height), reverse=True)
    if long_side > max(s.max_width, s.max_height) or short_side > min(s.max_width, s.max_height):
        raise invalid(f"The video is {result.width}x{result.height}; the limit is "
                      f"{s.max_width}x{s.max_height} (either orientation).")


def _nearest_bitrate(ladder: dict[int, int], height: int) -> int:
    """Bitrate for an off-ladder height: the nearest rung's, scaled by pixel count."""
    rung = min(ladder, key=lambda h: abs(h - height))
    return max(200, int(ladder[rung] * (height / rung) ** 2))
