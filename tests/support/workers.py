"""Temporal workers run inside the test process, on the test's own task queue."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

from temporalio.worker import Worker

from spool.config import Settings


def blog_worker(client, settings: Settings, **kwargs):
    """An in-process worker running the blog workflow and its activities on the pipeline
    queue; ``kwargs`` go to BlogActivities (a stand-in index or notifier)."""
    from activities.blog import BlogActivities
    from workflows.blog import BlogPublishWorkflow

    return running_worker(
        client,
        settings.queue_pipeline,
        workflows=[BlogPublishWorkflow],
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
            yield
