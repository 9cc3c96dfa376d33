"""Deleting a video, and its retention time: the deletion job started once per video
(workflows/deletion.py), the door's checks before it.

A delete is recorded in the database when it is accepted, before the job starts: from then
on the video and its media answer 404, whatever the job has done yet. A repeated delete
answers with the same job; a delete of a video nothing knows changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

import spool.service.jobs as jobs
from spool.config import Settings
from spool.db.deletions import deletion_of, mark_deleting, video_deletions
from spool.db.video import get_video
from spool.models import (
    DELETE_NOW_SIGNAL,
    VideoDeletionInput,
    run_text,
    video_deletion_workflow_id,
    video_workflow_id,
)
from spool.service.views import VideoDeleting

DELETION_WORKFLOW = jobs.DELETION_WORKFLOW


class VideoNotFound(LookupError):
    """Neither the database nor Temporal knows the video."""


def deletion_input(
    settings: Settings, video_id: str, *, delete_at: float | None = None
) -> VideoDeletionInput:
    return VideoDeletionInput(
        video_id=video_id,
        delete_at=delete_at,
        reason="request" if delete_at is None else "retention",
        queue_pipeline=settings.queue_pipeline,
        stop_wait_seconds=settings.video_delete_stop_wait_seconds,
        recheck_seconds=settings.video_delete_recheck_seconds,
    )


async def delete_video(
    client: Client, settings: Settings, engine: Engine, video_id: str
) -> VideoDeleting:
    """Accept a delete: record it, then start (or wake) the video's deletion job. Raises
    VideoNotFound for a video nothing knows, with nothing changed."""
    job_id = video_deletion_workflow_id(video_id)
    if await asyncio.to_thread(deletion_of, engine, video_id) is None:
        if not await _video_exists(client, engine, video_id):
            raise VideoNotFound(video_id)
        recorded = await asyncio.to_thread(mark_deleting, engine, video_id, job_id, "request")
        try:
            await _start_now(client, settings, video_id)
        except BaseException:
            if recorded:  # nothing will delete it: the video is back as it was
                await asyncio.to_thread(_unmark, engine, video_id)
            raise
    else:
        await _start_now(client, settings, video_id)
    return VideoDeleting(video_id=video_id, job_id=job_id)


async def schedule_retention(
    client: Client, settings: Settings, video_id: str, delete_at: datetime
) -> str:
    """Start the video's deletion job waiting (a durable timer) until ``delete_at``."""
    inp = deletion_input(settings, video_id, delete_at=delete_at.timestamp())
    started = await jobs.start_once(
        client,
        DELETION_WORKFLOW,
        inp,
        job_id=video_deletion_workflow_id(video_id),
        task_queue=settings.queue_pipeline,
        summary=run_text.deletion_summary(video_id, inp.delete_at),
        details=run_text.deletion_details(inp),
    )
    return started.job_id


async def _start_now(client: Client, settings: Settings, video_id: str) -> None:
    """Start the deletion, or wake one waiting for the video's retention time. One that has
    ended stands (the video is gone); one that failed is run again."""
    summary, inp = run_text.deletion_summary(video_id, None), deletion_input(settings, video_id)
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            DELETION_WORKFLOW,
            inp,
            id=video_deletion_workflow_id(video_id),
            task_queue=settings.queue_pipeline,
            start_signal=DELETE_NOW_SIGNAL,
            static_summary=summary,
            static_details=run_text.deletion_details(inp),
            search_attributes=jobs.with_summary(None, summary),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )


async def _video_exists(client: Client, engine: Engine, video_id: str) -> bool:
    if await asyncio.to_thread(get_video, engine, video_id) is not None:
        return True
    try:
        await jobs.describe(client, video_workflow_id(video_id))
    except jobs.JobNotFound:
        return False
    return True


def _unmark(engine: Engine, video_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(video_deletions.delete().where(video_deletions.c.video_id == video_id))
