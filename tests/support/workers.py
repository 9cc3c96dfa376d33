"""Temporal workers run inside the test process, on the test's own task queue."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

from temporalio.worker import Worker


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
