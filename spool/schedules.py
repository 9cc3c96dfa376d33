"""Spool's Temporal Schedules: recurring work the server starts, created idempotently when a
pipeline worker starts (or by ``python -m spool.schedules`` at deploy time), and visible in the
Temporal UI's Schedules tab (docs/storage.md, "The sweeps: Temporal Schedules").

- ``spool-sweep-abandoned-writes``: every hour, SweepAbandonedWritesWorkflow drops the writes
  begun more than SPOOL_STORAGE_ABANDONED_WRITE_SECONDS ago and never finished; with that
  setting 0 the schedule is removed.
- ``spool-sweep-expired-uploads``: every 5 minutes, SweepExpiredUploadsWorkflow ends the
  resumable uploads past their expiry (SPOOL_UPLOAD_EXPIRY_SECONDS) and starts the job of a
  complete upload whose API process died before starting it.

Each id is suffixed with the pipeline queue's name when that is not the default ``pipeline``.

Policies, chosen for work that is idempotent and only ever catches up: overlap SKIP (a sweep
still running when the next is due makes the next one unnecessary), a catch-up window of one
interval (after the server was down a day, one sweep runs, not twenty-four), and no pause on
failure (a store down for an hour fails one sweep; the next hour tries again).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from spool.config import Settings
from spool.models import defaults
from spool.models.housekeeping import SweepInput, UploadSweepInput

SWEEP_SCHEDULE_ID = "spool-sweep-abandoned-writes"
SWEEP_WORKFLOW = "SweepAbandonedWritesWorkflow"
SWEEP_EVERY = timedelta(hours=1)
UPLOADS_SCHEDULE_ID = "spool-sweep-expired-uploads"
UPLOADS_WORKFLOW = "SweepExpiredUploadsWorkflow"
# SPOOL_UPLOAD_SWEEP_SECONDS' default, 5 minutes: as often as the API swept them before; an
# expired upload holds store space until then.
UPLOADS_EVERY = timedelta(seconds=Settings.model_fields["upload_sweep_seconds"].default)
log = logging.getLogger("spool.schedules")
SWEEP_DETAILS = (
    "Started every hour by the schedule `spool-sweep-abandoned-writes`: overlap SKIP (a sweep "
    "still running makes the next unnecessary), catch-up window 1 h (after an outage one sweep "
    "runs, not one per missed hour). Idempotent: a failed sweep is redone by the next. "
    "See docs/observability.md and docs/storage.md."
)
UPLOADS_DETAILS = (
    "Started every 5 minutes by the schedule `spool-sweep-expired-uploads`: overlap SKIP, "
    "catch-up window 5 min (one sweep after an outage ends every upload that expired "
    "meanwhile), and it starts the job of a complete upload whose API process died first. "
    "See docs/observability.md and docs/storage.md."
)


def _deployment_id(base: str, settings: Settings) -> str:
    """One schedule per deployment: two Spools sharing a namespace run on queues of their own."""
    queue = settings.queue_pipeline
    return base if queue == defaults.QUEUE_PIPELINE else f"{base}-{queue}"


def sweep_schedule_id(settings: Settings) -> str:
    return _deployment_id(SWEEP_SCHEDULE_ID, settings)


def uploads_schedule_id(settings: Settings) -> str:
    return _deployment_id(UPLOADS_SCHEDULE_ID, settings)


def _every(interval: timedelta, action: ScheduleActionStartWorkflow) -> Schedule:
    """Every ``interval``, overlap SKIP, a catch-up window of one interval, never paused."""
    return Schedule(
        action=action,
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=interval,
            pause_on_failure=False,
        ),
    )


def sweep_schedule(settings: Settings) -> Schedule:
    """The abandoned-writes sweep's schedule as these settings want it."""
    return _every(
        SWEEP_EVERY,
        ScheduleActionStartWorkflow(
            SWEEP_WORKFLOW,
            SweepInput(
                older_than_seconds=settings.storage_abandoned_write_seconds,
                queue_pipeline=settings.queue_pipeline,
            ),
            id=sweep_schedule_id(settings).removeprefix("spool-"),
            task_queue=settings.queue_pipeline,
            execution_timeout=SWEEP_EVERY,
            static_summary="drop object-store writes begun "
            f"{settings.storage_abandoned_write_seconds / 3600:g} h ago and never finished",
            static_details=SWEEP_DETAILS,
        ),
    )


def uploads_schedule(settings: Settings) -> Schedule:
    """The expired-uploads sweep's schedule as these settings want it."""
    every = timedelta(seconds=settings.upload_sweep_seconds)
    return _every(
        every,
        ScheduleActionStartWorkflow(
            UPLOADS_WORKFLOW,
            UploadSweepInput(queue_pipeline=settings.queue_pipeline),
            id=uploads_schedule_id(settings).removeprefix("spool-"),
            task_queue=settings.queue_pipeline,
            execution_timeout=every,
            static_summary="end resumable uploads untouched for "
            f"{settings.upload_expiry_seconds / 3600:g} h and free their bytes",
            static_details=UPLOADS_DETAILS,
        ),
    )


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """Create Spool's schedules, or bring existing ones to these settings; idempotent, and
    safe when several workers start at once."""
    if settings.upload_sweep_seconds:
        await _ensure(client, uploads_schedule_id(settings), uploads_schedule(settings))
    else:
        await _remove(client, uploads_schedule_id(settings))
    schedule_id = sweep_schedule_id(settings)
    if not settings.storage_abandoned_write_seconds:
        await _remove(client, schedule_id)
        return
    await _ensure(client, schedule_id, sweep_schedule(settings))


async def _ensure(client: Client, schedule_id: str, wanted: Schedule) -> None:
    try:
        # Its first sweep at once, as the API's own sweep did at its start: a new deployment
        # does not wait an hour for what an old one left.
        await client.create_schedule(schedule_id, wanted, trigger_immediately=True)
        log.info("created schedule %s", schedule_id)
    except ScheduleAlreadyRunningError:

        def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # The state (paused by an operator, with their note) is theirs to keep.
            wanted.state = current.description.schedule.state
            return ScheduleUpdate(schedule=wanted)

        await client.get_schedule_handle(schedule_id).update(update)


async def _remove(client: Client, schedule_id: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        log.info("removed schedule %s (its setting turns it off)", schedule_id)


def main() -> int:
    """``python -m spool.schedules``: create or update the schedules, then exit."""
    from spool.config import get_settings
    from spool.temporal import connect

    async def run() -> None:
        settings = get_settings()
        await ensure_schedules(await connect(settings, wait_seconds=30), settings)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
