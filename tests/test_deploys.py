"""Deploys with Worker Versioning, on the Temporal server a deployment runs (docs/deploys.md).

``temporal-server`` v1.29.1 on PostgreSQL, one process per service (devstack/temporal_server.py),
and worker.py processes given a Worker Deployment version by SPOOL_WORKER_DEPLOYMENT and
SPOOL_WORKER_BUILD_ID. A video job is pinned to the version that started it: held at a gate
(tests.support.gated_worker) in the middle of its pipeline, it stays on version A's worker
while version B, made current, takes the new jobs; once it ends, A has drained and its worker
stops. The versions are switched with the command docs/deploys.md gives an operator.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus

from devstack.postgres import PostgresServer
from devstack.proc import free_port
from devstack.temporal import find_temporal_binary
from devstack.temporal_server import TemporalServer
from spool.config import Settings
from spool.ingest import video_job_input
from spool.service.jobs import start_video
from spool.storage import keys, open_storage
from spool.temporal import connect
from tests.support import media_clips
from tests.support.paths import LOGS
from tests.support.processes import spool_env, start_worker, stop_worker
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
DEPLOYMENT = "spool-deploys-test"
QUEUES = {"pipeline": "deploys-pipeline", "media": "deploys-media", "captions": "deploys-captions"}
LONG = 600.0  # only turns a hang into a failure


@pytest.fixture(scope="module")
def real_temporal():
    from tests.support.services import started

    logs = LOGS / "deploys"
    with (
        started(PostgresServer(free_port(), logs / "postgres.log"), "PostgreSQL") as postgres,
        # The first run builds temporal-server (go install, a few minutes).
        started(TemporalServer(postgres, free_port(), logs), "the Temporal server") as server,
    ):
        yield server


def set_current_version(server: TemporalServer, build_id: str) -> bool:
    """docs/deploys.md's command; False while the server does not yet know the version's
    pollers on every task queue of the deployment."""
    done = subprocess.run(
        [
            find_temporal_binary(),
            "worker",
            "deployment",
            "set-current-version",
            "--address",
            server.address,
            "--deployment-name",
            DEPLOYMENT,
            "--build-id",
            build_id,
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode == 0


def identity(proc) -> str:
    return f"{proc.pid}@"


async def encode_running_on(client: Client, job_id: str, who: str) -> bool:
    desc = await client.get_workflow_handle(job_id).describe()
    return any(
        p.activity_id == "encode-00000"
        and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        and p.last_worker_identity.startswith(who)
        for p in desc.raw_description.pending_activities
    )


async def worker_identities(client: Client, job_id: str) -> set[str]:
    """Every worker that took one of the job's workflow or activity tasks."""
    started = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: "workflow_task_started_event_attributes",
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "activity_task_started_event_attributes",
    }
    history = await client.get_workflow_handle(job_id).fetch_history()
    return {
        getattr(e, started[e.event_type]).identity.split("@", 1)[0] + "@"
        for e in history.events
        if e.event_type in started
    }


async def start_job(client: Client, settings: Settings, clip: Path) -> str:
    video_id = uuid.uuid4().hex[:12]
    await asyncio.to_thread(open_storage(settings).put_file, clip, keys.source_key(video_id))
    inp = video_job_input(settings, video_id, owner_id="deploys", captions=False)
    return (await start_video(client, settings, inp)).job_id


async def running_on(client: Client, deployment_version: str) -> int:
    query = f'TemporalWorkerDeploymentVersion="{deployment_version}" AND ExecutionStatus="Running"'
    return (await client.count_workflows(query)).count


@pytest.mark.timeout(1800)  # the first run builds the server binaries
async def test_a_running_video_job_stays_on_its_version_while_the_next_one_takes_new_jobs(
    real_temporal, tmp_path, clips
):
    settings = Settings(
        _env_file=None,
        temporal_address=real_temporal.address,
        temporal_tls=False,
        data_dir=tmp_path / "var",
        queue_pipeline=QUEUES["pipeline"],
        queue_media=QUEUES["media"],
        queue_captions=QUEUES["captions"],
    )
    client = await connect(settings, wait_seconds=30)
    clip = media_clips.make_clip(clips / "deploys.mp4", width=320, height=240, seconds=2)
    gate = tmp_path / "gate-open"
    queues = ["--queue", "pipeline", "--queue", "media"]
    base = {**spool_env(settings, **QUEUES), "SPOOL_WORKER_DEPLOYMENT": DEPLOYMENT}
    a = await start_worker(
        {**base, "SPOOL_WORKER_BUILD_ID": "a", "SPOOL_TEST_GATE_FILE": str(gate)},
        *queues,
        module="tests.support.gated_worker",
    )
    b = None
    try:
        await eventually(lambda: set_current_version(real_temporal, "a"), "A current", LONG, 1)
        held = await start_job(client, settings, clip)
        await eventually(
            lambda: encode_running_on(client, held, identity(a)), "held on A", LONG, 0.5
        )
        b = await start_worker({**base, "SPOOL_WORKER_BUILD_ID": "b"}, *queues)
        await eventually(lambda: set_current_version(real_temporal, "b"), "B current", LONG, 1)
        new = await start_job(client, settings, clip)
        assert (await client.get_workflow_handle(new).result())["state"] == "ready"
        desc = await client.get_workflow_handle(held).describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        pinned = desc.raw_description.workflow_execution_info.versioning_info
        assert pinned.deployment_version.build_id == "a", pinned
        assert await worker_identities(client, new) == {identity(b)}
        gate.touch()
        assert (await client.get_workflow_handle(held).result())["state"] == "ready"
        assert await worker_identities(client, held) == {identity(a)}
        # A has drained: nothing runs on it any more, so its workers may stop.
        await eventually(lambda: _none(running_on(client, f"{DEPLOYMENT}:a")), "A drained", LONG, 1)
        assert await stop_worker(a) == 0
        after = await start_job(client, settings, clip)
        assert (await client.get_workflow_handle(after).result())["state"] == "ready"
    finally:
        for proc in (a, b):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _none(count) -> bool:
    return await count == 0
