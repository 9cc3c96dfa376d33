"""worker.py as an operator runs it: which queues it polls, how many activities it runs at
once, and what a stop signal does to a step in the middle of its work."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

import worker
from spool.ingest import ingest_video, start_video_job
from spool.service.jobs import status as job_view
from tests.support import media_clips
from tests.support.processes import spool_env, start_worker, stop_worker

pytestmark = pytest.mark.e2e


async def pollers(client, queue: str, kind: TaskQueueType) -> int:
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
        )
    )
    return len(answer.pollers)


@pytest.mark.orchestration
async def test_queue_flag_polls_only_that_kind_of_work(client, settings, task_queue):
    queues = {kind: f"{task_queue}-{kind}" for kind in worker.QUEUE_KINDS}
    proc = await start_worker(spool_env(settings, **queues), "--queue", "media")
    try:
        activity = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        workflow = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        for _ in range(300):  # a poller shows up once its first long poll reaches the server
            if await pollers(client, queues["media"], activity):
                break
            await asyncio.sleep(0.1)
        assert await pollers(client, queues["media"], activity) >= 1
        for kind in ("pipeline", "captions"):
            assert await pollers(client, queues[kind], activity) == 0, kind
            assert await pollers(client, queues[kind], workflow) == 0, kind
    finally:
        assert await stop_worker(proc) == 0


@pytest.mark.orchestration
async def test_max_concurrent_activities_sets_each_queues_limit(client, settings, task_queue):
    args = worker.parse_args(
        [
            "--queue",
            "media",
            "--queue",
            "captions",
            "--max-concurrent-activities",
            "3",
            "--grace-seconds",
            "7",
        ]
    )
    separate = settings.model_copy(
        update={"queue_media": f"{task_queue}-m", "queue_captions": f"{task_queue}-c"}
    )
    plan = {
        w.name: w for w in worker.plan_queues(separate, args.queue, args.max_concurrent_activities)
    }
    assert {name: w.max_concurrent_activities for name, w in plan.items()} == {
        f"{task_queue}-m": 3,
        f"{task_queue}-c": 3,
    }
    assert {a.__name__ for a in plan[f"{task_queue}-m"].activities} == {
        "extract_poster",
        "encode_chunk",
        "encode_audio",
        "package_rendition",
        "make_storyboard",
    }
    # The limit and the grace period reach the Temporal worker that polls each queue.
    with ThreadPoolExecutor(6) as pool:
        built = worker.build_workers(client, list(plan.values()), pool, args.grace_seconds)
        configs = [w.config() for w in built]
    assert [c["task_queue"] for c in configs] == list(plan)
    assert [c["max_concurrent_activities"] for c in configs] == [3, 3]
    assert [c["graceful_shutdown_timeout"].total_seconds() for c in configs] == [7, 7]


async def running_rendition(client, job_id: str) -> dict:
    """Wait until the job's rendition step has started encoding; return that step."""
    for _ in range(1200):
        steps = (await job_view(client, job_id)).model_dump(mode="json")["steps"]
        rendition = next((s for s in steps if s["name"].startswith("rendition-")), None)
        if rendition and (rendition.get("percent") or 0) > 0:
            return rendition
        await asyncio.sleep(0.1)
    raise AssertionError(f"the rendition never started encoding: {steps}")


async def activity_events(handle, prefix: str) -> list[str]:
    """The kinds of event the activities whose id starts with ``prefix`` ended with."""
    history = await handle.fetch_history()
    ids: dict[int, str] = {}
    ends = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            ids[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
        for kind in ("completed", "failed", "timed_out", "canceled"):
            field = f"activity_task_{kind}_event_attributes"
            if event.HasField(field) and ids[getattr(event, field).scheduled_event_id].startswith(
                prefix
            ):
                ends.append(kind)
    return ends


@pytest.fixture
def paced_video(clips, settings):
    """A stored upload whose encode takes at least its length (ffmpeg reads at native pace
    in tests.support.paced_worker), at any machine speed."""

    def make(seconds: float):
        clip = media_clips.make_clip(
            clips / f"paced{seconds}.mp4",
            width=160,
            height=120,
            seconds=seconds,
            speech=None,
            tone=True,
        )
        return ingest_video(settings, clip, owner_id="op", captions=False)

    return make


async def stop_mid_encode(client, settings, inp, grace_seconds: str):
    """Start a paced worker and the job, SIGTERM the worker once its rendition runs; the
    worker must exit 0. Returns the job's handle."""
    proc = await start_worker(
        spool_env(settings), "--grace-seconds", grace_seconds, module="tests.support.paced_worker"
    )
    handle = await start_video_job(client, settings, inp)
    try:
        await running_rendition(client, handle.id)
    finally:
        assert await stop_worker(proc) == 0
    return handle


async def test_stop_signal_lets_a_running_step_finish_within_the_grace_period(
    client, settings, paced_video
):
    handle = await stop_mid_encode(client, settings, paced_video(4), "600")
    # Stopped mid-encode with time to spare: the encode finished and was reported.
    assert await activity_events(handle, "encode-") == ["completed"]  # its one chunk
    await handle.terminate("test over")


async def test_stop_signal_cancels_a_step_still_running_after_the_grace_period(
    client, settings, paced_video
):
    handle = await stop_mid_encode(client, settings, paced_video(60), "1")
    # A 60 s encode cannot finish in the 1 s grace: it was cancelled (the worker exited 0
    # without waiting for it), so the step did not complete and is pending to run again.
    assert "completed" not in await activity_events(handle, "encode-")
    pending = (await handle.describe()).raw_description.pending_activities
    rendition = next(a for a in pending if a.activity_id.startswith("encode-"))
    # The first attempt ended by the shutdown's cancel; the next one waits for a worker.
    assert rendition.attempt == 2
    assert "shutting down" in rendition.last_failure.message
    await handle.terminate("test over")
