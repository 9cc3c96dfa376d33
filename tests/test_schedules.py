"""Spool's Temporal Schedules (spool/schedules.py): made idempotently by every pipeline
worker, with the documented policies; the sweeps they start drop abandoned writes and end
expired resumable uploads, with no API process sweeping anything itself."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from temporalio.client import ScheduleOverlapPolicy, WorkflowHandle
from temporalio.service import RPCError

from activities.housekeeping import HousekeepingActivities
from spool.config import Settings
from spool.db.uploads import uploads as uploads_table
from spool.models.housekeeping import SweepResult, UploadSweepResult
from spool.schedules import (
    SWEEP_EVERY,
    UPLOADS_EVERY,
    ensure_schedules,
    sweep_schedule_id,
    uploads_schedule_id,
)
from spool.storage import LocalStorage, ObjectStorage, open_storage
from spool.storage.local import INCOMING
from tests.support.api import api_app, api_settings
from tests.support.deletion import keep_history
from tests.support.tus import HEADERS, create, patch
from tests.support.waiting import eventually
from tests.support.workers import running_worker
from workflows.housekeeping import SweepAbandonedWritesWorkflow, SweepExpiredUploadsWorkflow

pytestmark = pytest.mark.orchestration


@contextlib.asynccontextmanager
async def sweeping_worker(client, settings: Settings, storage: ObjectStorage):
    async with running_worker(
        client,
        settings.queue_pipeline,
        workflows=[SweepAbandonedWritesWorkflow, SweepExpiredUploadsWorkflow],
        activities=HousekeepingActivities(storage, settings).activities(),
    ):
        try:
            yield
        finally:
            await remove_schedules(client, settings)


async def remove_schedules(client, settings: Settings) -> None:
    """This test's schedules go with it: none starts runs on its queue once it has ended."""
    for schedule_id in (sweep_schedule_id(settings), uploads_schedule_id(settings)):
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(schedule_id).delete()


async def first_sweep(
    client, settings: Settings, schedule_id: str | None = None, result_type=SweepResult
) -> WorkflowHandle:
    """The run a schedule (by default the abandoned-writes sweep) started when it was made."""
    handle = client.get_schedule_handle(schedule_id or sweep_schedule_id(settings))

    async def started() -> str | None:
        actions = (await handle.describe()).info.recent_actions
        return actions[0].action.workflow_id if actions else None

    workflow_id = await eventually(started, "the schedule's first run")
    return client.get_workflow_handle(workflow_id, result_type=result_type)


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
        described = await client.get_schedule_handle(sweep_schedule_id(settings)).describe()
    assert described.schedule.spec.intervals[0].every == SWEEP_EVERY
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert described.schedule.policy.catchup_window == SWEEP_EVERY
    assert described.schedule.action.task_queue == settings.queue_pipeline
    assert result.swept == 1
    assert not list((settings.resolved_storage_dir / INCOMING).glob("*.part"))
    keep_history("housekeeping-sweep", await run.fetch_history())


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


async def test_turning_the_sweep_off_removes_its_schedule(settings, client):
    await ensure_schedules(client, settings)
    off = settings.model_copy(update={"storage_abandoned_write_seconds": 0.0})
    await ensure_schedules(client, off)
    await ensure_schedules(client, off)  # nothing to remove: no error
    with pytest.raises(RPCError):
        await client.get_schedule_handle(sweep_schedule_id(settings)).describe()
    # The other sweep stays: expired uploads are ended whatever the store's own sweep does.
    await client.get_schedule_handle(uploads_schedule_id(settings)).describe()
    await ensure_schedules(client, off.model_copy(update={"upload_sweep_seconds": 0.0}))
    with pytest.raises(RPCError):
        await client.get_schedule_handle(uploads_schedule_id(settings)).describe()


async def test_expired_uploads_are_ended_by_their_schedule_with_no_api_process_sweeping(
    client, settings
):
    """An upload left unfinished past its expiry holds store space; the schedule's sweep
    ends it and drops its bytes, while an upload still within its time is left alone."""
    s = api_settings(settings)
    async with api_app(s, client) as (app, http):
        location = (await create(http, 2000)).headers["Location"]
        assert (await patch(http, location, 0, b"x" * 1000)).status_code == 204
        [part] = (s.resolved_storage_dir / INCOMING).glob("tus-*.part")
        # A day has passed for this upload: its row says it expired a second ago.
        with app.state.services.engine.begin() as db:
            db.execute(
                uploads_table.update()
                .where(uploads_table.c.upload_id == location.rsplit("/", 1)[1])
                .values(expires_at=time.time() - 1)
            )
        fresh = (await create(http, 2000)).headers["Location"]
        assert (await patch(http, fresh, 0, b"y" * 1000)).status_code == 204
        async with sweeping_worker(client, s, open_storage(s)):
            await ensure_schedules(client, s)
            run = await first_sweep(
                client, s, uploads_schedule_id(s), result_type=UploadSweepResult
            )
            result = await run.result()
            described = await client.get_schedule_handle(uploads_schedule_id(s)).describe()
            keep_history("housekeeping-sweep-uploads", await run.fetch_history())
        assert result.ended == 1
        assert not part.exists()
        assert (await http.head(location, headers=HEADERS)).status_code == 410
        assert (await http.head(fresh, headers=HEADERS)).status_code == 200
    assert described.schedule.spec.intervals[0].every == UPLOADS_EVERY
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert described.schedule.policy.catchup_window == UPLOADS_EVERY
    assert described.schedule.action.workflow == "SweepExpiredUploadsWorkflow"
