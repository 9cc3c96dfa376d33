"""The video pipeline's workers in the test process, and settings small enough that a clip of
a few seconds has several chunks, segments and sprite sheets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from activities.video import VideoActivitySet
from activities.webhooks import WebhookActivities
from spool.config import Settings
from spool.ingest import ingest_video, start_video_job
from spool.models import VideoStatus
from tests.support.history import activity_events, heartbeating_activities
from tests.support.waiting import eventually
from workflows.captions import CaptionsWorkflow
from workflows.video import VideoPipelineWorkflow

WORKFLOWS = [VideoPipelineWorkflow, CaptionsWorkflow]
# Small numbers so a clip of a few seconds has several chunks, segments and sprite sheets.
CHUNKED = {
    "hls_segment_seconds": 2.0,
    "chunk_seconds": 2.0,
    "storyboard_seconds": 1.0,
    "storyboard_columns": 2,
    "storyboard_rows": 2,
    "storyboard_thumb_width": 64,
}


def chunked(settings: Settings, **extra) -> Settings:
    """``settings`` with CHUNKED's small numbers, and ``extra`` fields."""
    return settings.model_copy(update={**CHUNKED, **extra})


@contextlib.asynccontextmanager
async def video_workers(
    client: Client,
    settings: Settings,
    *,
    acts: VideoActivitySet | None = None,
    media_slots: int | None = None,
) -> AsyncIterator[VideoActivitySet]:
    """The pipeline worker in this process and, when ``media_slots`` is set, a media worker
    with that many activity slots on the media queue (otherwise every queue is one)."""
    acts = acts or VideoActivitySet.from_settings(settings)
    pipeline = (
        acts.pipeline_activities()
        + acts.captions_activities()
        + WebhookActivities(settings).activities()
    )
    if settings.queue_media == settings.queue_pipeline:
        pipeline += acts.media_activities()
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=settings.queue_pipeline,
                workflows=WORKFLOWS,
                activities=pipeline,
                max_heartbeat_throttle_interval=timedelta(seconds=1),
            )
        )
        if media_slots is not None:
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=settings.queue_media,
                    activities=acts.media_activities(),
                    max_concurrent_activities=media_slots,
                    max_heartbeat_throttle_interval=timedelta(seconds=1),
                )
            )
        yield acts


async def started_chunks(handle, min_percent: float = 1.0) -> list[str]:
    """Chunk activities running with at least min_percent in their last heartbeat."""
    return [
        pending.activity_id
        for pending, percent in await heartbeating_activities(handle)
        if pending.activity_id.startswith("encode-") and percent >= min_percent
    ]


def media_tasks_in_order(history) -> list[tuple[str, int]]:
    """(activity id, priority key) of each media-queue activity, in the order they completed
    (a host with one slot runs them one after another: the order it took them in)."""
    return [
        (activity.activity_id, activity.priority.priority_key)
        for activity, _event in activity_events(
            history, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        )
        if activity.activity_id.startswith(("encode-", "audio", "poster"))
    ]


async def tasks_taken_by_a_late_host(
    client: Client, s: Settings, clip: Path
) -> tuple[VideoStatus, list[tuple[str, int]]]:
    """A job of ``clip`` whose media tasks all wait (no media host on ``s.queue_media``) until
    a host with one slot comes: its outcome, and the media tasks in the order it took them."""
    async with video_workers(client, s):
        inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
        handle = await start_video_job(client, s, inp)

        async def waiting() -> list[str] | None:
            history = await handle.fetch_history()
            ids = [
                e.activity_task_scheduled_event_attributes.activity_id
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
            return ids if "poster" in ids and "audio" in ids else None

        await eventually(waiting, "the job's media tasks to be scheduled")
        async with Worker(
            client,
            task_queue=s.queue_media,
            activities=VideoActivitySet.from_settings(s).media_activities(),
            max_concurrent_activities=1,
        ):
            status: VideoStatus = await asyncio.wait_for(handle.result(), 300)
    return status, media_tasks_in_order(await handle.fetch_history())
