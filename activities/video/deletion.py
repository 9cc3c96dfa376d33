"""Deleting a video (workflows/deletion.py): its deletion recorded, its job stopped, its
objects and its rows removed. Every activity is idempotent: a retry after a crash finds what
is left and removes it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.video.common import heartbeating
from spool.config import Settings
from spool.db import get_engine
from spool.db.deletions import mark_deleted, mark_deleting
from spool.db.video import delete_video_rows, get_video
from spool.models import (
    DeleteObjectsInput,
    DeleteObjectsResult,
    DeleteRecordsInput,
    MarkDeletingInput,
    StopJobInput,
    StopJobResult,
    VideoPipelineInput,
    captions_workflow_id,
    video_deletion_workflow_id,
    video_workflow_id,
)
from spool.storage import keys
from spool.storage.transfers import Transfers

# How often a job being stopped is asked whether it has.
POLL_SECONDS = 1.0
TERMINATE_REASON = "video deleted: the job did not stop on its cancel in time"


class DeletionActivities:
    """The deletion's steps; built once per worker, sharing its storage client."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.storage = files.storage
        self.engine = get_engine(settings)

    @activity.defn(name="video.mark_deleting")
    async def mark_deleting(self, inp: MarkDeletingInput) -> None:
        """From here on the API answers 404 for the video (the API records it itself when it
        accepts a delete; a retention time's deletion records it here)."""
        await asyncio.to_thread(mark_deleting, self.engine, inp.video_id, inp.job_id, inp.reason)

    @activity.defn(name="video.stop_job")
    async def stop_job(self, inp: StopJobInput) -> StopJobResult:
        """Cancel the video's job and wait until it (and its captions child) has ended: a
        job waits for its heavy steps to stop, so nothing of it writes afterwards."""
        client = activity.client()
        handle = client.get_workflow_handle(video_workflow_id(inp.video_id))
        status = await _status(handle)
        if status is None:
            row = await asyncio.to_thread(get_video, self.engine, inp.video_id)
            return StopJobResult("none", owner_id=row["owner_id"] if row else None)
        owner_id, callback_url = await _job_contacts(client, handle)
        outcome = "ended"
        if status == WorkflowExecutionStatus.RUNNING:
            outcome = await _stop(handle, inp.terminate_after)
        child = client.get_workflow_handle(captions_workflow_id(inp.video_id))
        if await _status(child) == WorkflowExecutionStatus.RUNNING:
            await _stop(child, inp.terminate_after)
        return StopJobResult(outcome, owner_id=owner_id, callback_url=callback_url)

    @activity.defn(name="video.delete_objects")
    async def delete_objects(self, inp: DeleteObjectsInput) -> DeleteObjectsResult:
        """Every object under the video's prefix, and its writes in flight (their commit then
        fails); heartbeating, so a lost worker is replaced in seconds."""
        prefix = keys.video_prefix(inp.video_id)
        async with heartbeating():
            aborted = await asyncio.to_thread(self.storage.abort_writes_under, prefix)
            deleted = await asyncio.to_thread(self.storage.delete_prefix, prefix)
        activity.logger.info(
            "video %s: %d objects deleted, %d uploads aborted", inp.video_id, deleted, aborted
        )
        return DeleteObjectsResult(deleted=deleted, aborted_uploads=aborted)

    @activity.defn(name="video.delete_records")
    async def delete_records(self, inp: DeleteRecordsInput) -> int:
        """The video's rows (record, caption segments, its notices' ledger rows); its
        deletion's own row stays, marked deleted. Videos have no search documents (the index
        holds posts only). How many rows went."""
        gone = await asyncio.to_thread(delete_video_rows, self.engine, inp.video_id)
        # Recorded again first: a door whose start failed may have dropped the record while
        # a repeated request's job went on.
        job_id = video_deletion_workflow_id(inp.video_id)
        await asyncio.to_thread(mark_deleting, self.engine, inp.video_id, job_id, "request")
        await asyncio.to_thread(mark_deleted, self.engine, inp.video_id)
        return gone


async def _status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    """The workflow's status; None when the server knows no such workflow."""
    try:
        return (await handle.describe()).status
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _stop(handle: WorkflowHandle[Any, Any], terminate_after: float) -> str:
    """Cancel, then wait (heartbeating) until it has ended: "cancelled", or "terminated" when
    it had not ended by ``terminate_after``."""
    outcome = "cancelled"
    await _ignoring_closed(handle.cancel())
    while (status := await _status(handle)) == WorkflowExecutionStatus.RUNNING:
        activity.heartbeat(outcome)
        if outcome == "cancelled" and time.time() > terminate_after:
            await _ignoring_closed(handle.terminate(reason=TERMINATE_REASON))
            outcome = "terminated"
        await asyncio.sleep(POLL_SECONDS)
    activity.logger.info("job %s ended %s (%s)", handle.id, outcome, status)
    return outcome


async def _ignoring_closed(request: Awaitable[Any]) -> None:
    """Send a cancel or terminate; one that finds the workflow already ended is no error."""
    try:
        await request
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise


async def _job_contacts(
    client: Client, handle: WorkflowHandle[Any, Any]
) -> tuple[str | None, str | None]:
    """The owner and the callback URL the job was started with (its first event's input):
    the deletion's notice goes where the job's went."""
    async for event in handle.fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        if not payloads:
            break
        try:
            (inp,) = await client.data_converter.decode(payloads[:1], [VideoPipelineInput])
        except Exception:  # noqa: BLE001 - started by other means: no contacts to reuse
            break
        return inp.owner_id, inp.callback_url
    return None, None
