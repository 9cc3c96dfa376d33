"""The video pipeline's workers in the test process, and settings small enough that a clip of
a few seconds has several chunks, segments and sprite sheets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.video import VideoActivitySet
from activities.webhooks import WebhookActivities
from spool.config import Settings
from tests.support.history import heartbeating_activities
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
