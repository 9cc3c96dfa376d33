"""Spool's Temporal Schedules (spool/schedules.py): made idempotently by every pipeline
worker, with the documented policies, and the sweep they start drops abandoned writes."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from temporalio.client import ScheduleOverlapPolicy, WorkflowHandle
from temporalio.service import RPCError

from activities.housekeeping import HousekeepingActivities
from spool.config import Settings
from spool.models.housekeeping import SweepResult
from spool.schedules import SWEEP_EVERY, ensure_schedules, sweep_schedule_id
from spool.storage import LocalStorage, ObjectStorage, open_storage
from spool.storage.local import INCOMING
from tests.support.api import api_settings
from tests.support.deletion import keep_history
from tests.support.waiting import eventually
from tests.support.workers import running_worker
from workflows.housekeeping import SweepAbandonedWritesWorkflow

pytestmark = pytest.mark.orchestration


@contextlib.asynccontextmanager
async def sweeping_worker(client, settings: Settings, storage: ObjectStorage):
    async with running_worker(
        client,
        settings.queue_pipeline,
        workflows=[SweepAbandonedWritesWorkflow],
        activities=[HousekeepingActivities(storage).sweep_abandoned_writes],
    ):
        yield


async def first_sweep(client, settings: Settings) -> WorkflowHandle:
    """The run the schedule started when it was made."""
    handle = client.get_schedule_handle(sweep_schedule_id(settings))

    async def started() -> str | None:
        actions = (await handle.describe()).info.recent_actions
        return actions[0].action.workflow_id if actions else None

    workflow_id = await eventually(started, "the schedule's first run")
    return client.get_workflow_handle(workflow_id, result_type=SweepResult)


async def test_the_sweep_schedule_is_made_once_with_its_policies_and_sweeps_at_once(
    settings, client
):
    storage = open_storage(settings)
    abandoned = storage.begin_write("videos/abc/source")
    abandoned.write(b"half an upload")
    old = time.time() - 2 * settings.storage_abandoned_write_seconds
    for part in (settings.resolved_storage_dir / INCOMING).glob("*.part"):
        os.utime(part, (old, old))
    async with sweeping_worker(client, settings, storage):
        await ensure_schedules(client, settings)
        await ensure_schedules(client, settings)  # a second worker starting: the same one
        run = await first_sweep(client, settings)
        result = await run.result()
    handle = client.get_schedule_handle(sweep_schedule_id(settings))
    described = await handle.describe()
    assert described.schedule.spec.intervals[0].every == SWEEP_EVERY
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert described.schedule.policy.catchup_window == SWEEP_EVERY
    assert described.schedule.action.task_queue == settings.queue_pipeline
    assert result.swept == 1
    assert not list((settings.resolved_storage_dir / INCOMING).glob("*.part"))
    keep_history("housekeeping-sweep", await run.fetch_history())
    await handle.delete()


async def test_the_sweep_drops_writes_abandoned_long_ago_as_soon_as_its_schedule_is_made(
    client, settings
):
    """An upload whose process was killed leaves its bytes in the store; the sweep drops
    them once they are older than a day, and leaves writes still going alone. (The API ran
    this sweep itself until it became a Temporal Schedule.)"""
    s = api_settings(settings)
    storage = open_storage(s)
    assert isinstance(storage, LocalStorage)
    abandoned = storage.begin_write("videos/killed/source")
    abandoned.write(b"half an upload")
    [part] = (storage.root / INCOMING).glob("*.part")
    two_days_ago = time.time() - 2 * 86400
    os.utime(part, (two_days_ago, two_days_ago))
    going = storage.begin_write("videos/slow/source")
    going.write(b"an upload still coming in")
    async with sweeping_worker(client, s, storage):
        await ensure_schedules(client, s)
        await eventually(lambda: not part.exists(), "the abandoned write dropped")
        assert len(list((storage.root / INCOMING).glob("*.part"))) == 1
    going.commit()
    assert storage.read_bytes("videos/slow/source") == b"an upload still coming in"
    await client.get_schedule_handle(sweep_schedule_id(s)).delete()


async def test_turning_the_sweep_off_removes_its_schedule(settings, client):
    await ensure_schedules(client, settings)
    off = settings.model_copy(update={"storage_abandoned_write_seconds": 0.0})
    await ensure_schedules(client, off)
    await ensure_schedules(client, off)  # nothing to remove: no error
    with pytest.raises(RPCError):
        await client.get_schedule_handle(sweep_schedule_id(settings)).describe()
