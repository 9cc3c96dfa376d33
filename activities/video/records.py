"""The job's record of a video (its row, as the job goes) and the owner's notice, once."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime
from typing import Any

from temporalio import activity

from spool.config import Settings
from spool.db import get_engine
from spool.db.video import ensure_video, update_video
from spool.delivery_pool import DeliveryPool
from spool.models.common import FINAL_JOB_STATES, JobState
from spool.models.video import NotifyOwnerInput, RecordVideoInput
from spool.notify import make_notifier, notify_once
from spool.storage import keys
from spool.storage.transfers import Transfers


class RecordActivities:
    """``video.record`` and ``video.notify_owner``; built once per worker."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.files = files
        self.engine = get_engine(settings)
        self.notifier = make_notifier(settings)
        self.deliveries = DeliveryPool(settings.webhook_delivery_threads)

    @activity.defn(name="video.record")
    async def record(self, inp: RecordVideoInput) -> None:
        await asyncio.to_thread(self._record_video, inp)

    def _record_video(self, inp: RecordVideoInput) -> None:
        # States reach the database as plain strings (str() of a StrEnum is its value).
        ensure_video(
            self.engine, inp.video_id, inp.owner_id, str(inp.status or JobState.PROCESSING)
        )
        update_video(self.engine, inp.video_id, **_columns(inp))
        if inp.status in FINAL_JOB_STATES:
            # Nothing intermediate outlives the job: a cancelled or failed captions branch
            # never reached record_captions, which drops the WAV on success; chunks and
            # thumbnails are kept until here so that a retried package or storyboard step
            # still finds them. Every step has stopped by now (cancels are waited for).
            self.files.storage.delete(keys.audio_key(inp.video_id))
            self.files.storage.delete_prefix(keys.work_prefix(inp.video_id))
        if inp.status in (JobState.FAILED, JobState.CANCELLED):
            # Its live playlists never ended and nothing names them any more (playable_url);
            # a ready job's stay, for a viewer still playing them.
            self.files.storage.delete_prefix(keys.live_key(inp.video_id, ""))

    @activity.defn(name="video.notify_owner")
    async def notify_owner(self, inp: NotifyOwnerInput) -> int:
        payload = {"video_id": inp.video_id, "state": str(inp.state), **inp.payload}
        outcome = await self.deliveries.run(
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


def _columns(inp: RecordVideoInput) -> dict[str, Any]:
    """The columns the input sets, as update_video takes them (None leaves one as it is)."""
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
    if inp.playable_at is not None:
        values["playable_at"] = datetime.fromisoformat(inp.playable_at)
    return values
