"""The probe and the plan: what the upload is, refused before any heavy work when it breaks a
limit (docs/ARCHITECTURE.md, "Untrusted input"), and how the job will be encoded."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

from temporalio import activity

from activities.video.common import heartbeating, invalid, rendition_rate, scratch_dir
from spool.config import Settings
from spool.media import bounds, keyframes, tools
from spool.media import probe as probing
from spool.models.chunks import output_fps, plan_chunks, snap_to_keyframes, split_first_chunk
from spool.models.live import LivePlan
from spool.models.video import (
    EncodingPlan,
    EncodingPlanInput,
    ProbeInput,
    ProbeResult,
    RenditionPlan,
    rendition_name,
)
from spool.storage import KeyNotFound, keys
from spool.storage.transfers import Transfers


class ProbeActivities:
    """``video.probe`` and ``video.plan_encoding``; built once per worker."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.settings = settings
        self.files = files

    @activity.defn(name="video.probe")
    async def probe(self, inp: ProbeInput) -> ProbeResult:
        s = self.settings
        try:
            stored = await self.files.call(self.files.storage.stat, inp.source_key)
        except KeyNotFound:
            raise invalid(f"The upload {inp.source_key} is missing from storage.") from None
        # Refused before fetching when storage already says so, and again for the bytes
        # actually fetched: an object that grew in between is judged by what was read.
        _refuse_size(stored.size, s.max_upload_bytes)
        limits = tools.Limits(
            timeout_seconds=probing.PROBE_TIMEOUT_SECONDS, memory_limit_mb=s.ffmpeg_memory_limit_mb
        )
        async with (
            heartbeating(),
            scratch_dir() as tmp,
            self.files.source(inp.source_key, tmp, stored) as src,
        ):
            _refuse_size((await asyncio.to_thread(src.stat)).st_size, s.max_upload_bytes)
            result = await _probed(src, limits, s)
            await _refuse_undecodable(src, result, limits)
            await self._store_keyframes(inp.video_id, src, limits, result.duration)
        return result

    async def _store_keyframes(
        self, video_id: str, src: Path, limits: tools.Limits, duration: float
    ) -> None:
        """The source's keyframe times, for the plan to cut chunks on (plan_encoding). Only
        an optimisation: a source whose keyframes cannot be listed is cut on the segment
        grid, so a failure here is not the upload's fault and stores nothing. The listing is
        bounded by what the duration allows at the frame-rate limit: a stream with more
        packets than that is refused, whatever rate its header states."""
        rate = self.settings.max_frame_rate
        most = math.ceil((duration + 1.0) * rate)
        try:
            times = await keyframes.keyframe_times(src, limits, max_packets=most)
        except keyframes.TooManyPackets:
            raise invalid(
                f"The video holds more than {most:,} frames in its {duration:.1f} s: over "
                f"{rate:g} frames a second, the limit (SPOOL_MAX_FRAME_RATE)."
            ) from None
        if times:
            await self.files.put_bytes(
                json.dumps(times).encode("ascii"), keys.keyframes_key(video_id)
            )

    @activity.defn(name="video.plan_encoding")
    async def plan_encoding(self, inp: EncodingPlanInput) -> EncodingPlan:
        """This worker's settings turned into the job's plan, kept in its history."""
        s = self.settings
        fps = output_fps(inp.probe.fps)
        try:
            chunks = plan_chunks(
                inp.probe.duration,
                chunk_seconds=s.chunk_seconds,
                segment_seconds=s.hls_segment_seconds,
            )
        except ValueError as exc:
            raise invalid(f"The video cannot be cut into chunks: {exc}") from None
        # A video of one chunk plays when it is ready, a moment later: nothing to gain.
        live = live_plan(s.playable_rung, inp.heights) if len(chunks) > 1 else None
        if live is not None:
            planned = len(chunks)
            chunks = split_first_chunk(chunks, s.hls_segment_seconds)
            live.first_chunks = len(chunks) - planned + 1 if len(chunks) > planned else 0
        if len(chunks) > 1:
            chunks = snap_to_keyframes(
                chunks,
                await self._stored_keyframes(inp.video_id),
                fps=fps,
                segment_seconds=s.hls_segment_seconds,
            )
        return EncodingPlan(
            chunks=chunks,
            renditions=[
                RenditionPlan(rendition_name(h), h, *rendition_rate(s, h, inp.probe))
                for h in inp.heights
            ],
            fps=fps,
            segment_seconds=s.hls_segment_seconds,
            audio_kbps=s.audio_bitrate_kbps,
            thumb_every=thumb_interval(s.storyboard_seconds, s.hls_segment_seconds),
            thumb_width=s.storyboard_thumb_width,
            storyboard_columns=s.storyboard_columns,
            storyboard_rows=s.storyboard_rows,
            live=live,
        )

    async def _stored_keyframes(self, video_id: str) -> list[float]:
        """What the probe stored; nothing for a job probed before it stored keyframes."""
        try:
            raw = await self.files.call(self.files.storage.read_bytes, keys.keyframes_key(video_id))
            times = json.loads(raw)
        except (KeyNotFound, ValueError):
            return []
        if not isinstance(times, list):
            return []
        return [float(t) for t in times if isinstance(t, int | float)]


def live_plan(wanted_rung: int, heights: list[int]) -> LivePlan | None:
    """The rendition published while the job runs: the rung nearest ``wanted_rung`` (the
    lower of two as near), or None when it is 0 (SPOOL_PLAYABLE_RUNG) or nothing is made."""
    if wanted_rung <= 0 or not heights:
        return None
    rung = min(heights, key=lambda h: (abs(h - wanted_rung), h))
    return LivePlan(rendition=rendition_name(rung))


def thumb_interval(wanted: float, segment_seconds: float) -> float:
    """The storyboard interval nearest ``wanted`` that divides a segment (at most one): chunks
    start on segment boundaries, so every chunk's thumbnails then fall on one time grid."""
    return segment_seconds / max(1, round(segment_seconds / wanted))


# --- refusals --------------------------------------------------------------------------------


async def _probed(src: Path, limits: tools.Limits, s: Settings) -> ProbeResult:
    """What ffprobe finds in the upload; a file it cannot read, one past the limits it shows
    (_refuse_streams) or past a bound they do not show (spool/media/bounds.py) is refused,
    saying why."""
    try:
        return await bounds.probe_upload(
            src,
            limits,
            bounds.UploadBounds.from_settings(s),
            lambda result: _refuse_streams(result, s),
        )
    except bounds.UploadRefused as exc:
        raise invalid(str(exc)) from None
    except tools.MediaTimeout:
        raise invalid(
            f"Reading this file's header took longer than "
            f"{probing.PROBE_TIMEOUT_SECONDS} s; it is not a video Spool can "
            "process."
        ) from None
    except tools.MediaError as exc:
        head = await asyncio.to_thread(tools.file_head, src)
        raise invalid(probing.unreadable_reason(exc.stderr, head)) from None


async def _refuse_undecodable(src: Path, result: ProbeResult, limits: tools.Limits) -> None:
    """Only now, with every limit met, are pictures decoded: a header may declare a picture
    size (or a codec) that its packets do not hold."""
    try:
        frames = await probing.decoded_frame_count(src, limits)
    except tools.MediaError:
        frames = 0
    if frames == 0:
        raise invalid(
            f"The {result.video_codec} video stream declares "
            f"{result.width}x{result.height} pictures, but none of its "
            "first packets decodes: the file is damaged or its header "
            "does not match its data."
        )


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
