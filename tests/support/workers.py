"""Temporal workers run inside the test process, on the test's own task queue."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.worker import Worker

from spool.config import Settings
from tests.support.waiting import eventually


async def polled(client, queue: str) -> bool:
    """Whether the server has seen a worker poll the queue's workflow tasks: a post's
    operations go to a worker only once it has (spool/service/post_ops.py), so a test's
    worker is ready when this is true."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(answer.pollers)


def blog_worker(client, settings: Settings, **kwargs):
    """An in-process worker running the blog workflows (a post's, and its publishing jobs)
    and their activities on the pipeline queue; ``kwargs`` go to BlogActivities (a stand-in
    index or notifier)."""
    from activities.blog import BlogActivities
    from workflows.blog import BlogPublishWorkflow
    from workflows.posts import PostWorkflow

    return running_worker(
        client,
        settings.queue_pipeline,
        workflows=[BlogPublishWorkflow, PostWorkflow],
        activities=BlogActivities(settings, **kwargs).activities(),
    )


@contextlib.asynccontextmanager
async def running_worker(
    client, task_queue: str, *, workflows=(), activities=(), threads: int = 16
):
    """An in-process worker on the test's queue; sync activities run on a thread pool."""
    with ThreadPoolExecutor(threads) as pool:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=list(workflows),
            activities=list(activities),
            activity_executor=pool,
            max_concurrent_activities=threads,
        ):
            if workflows:
                await eventually(lambda: polled(client, task_queue), "the worker's first poll")
            yield


@contextlib.asynccontextmanager
async def spool_worker(client, settings: Settings):
    """Every queue's real workflows and activities, as worker.py would run them."""
    from worker import QUEUE_KINDS, build_workers, plan_queues

    plan = plan_queues(settings, list(QUEUE_KINDS), max_concurrent=4)
    with ThreadPoolExecutor(24) as pool:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(client, plan, pool, grace_seconds=2):
                await stack.enter_async_context(w)
            await eventually(
                lambda: polled(client, settings.queue_pipeline), "the worker's first poll"
            )
            yield
