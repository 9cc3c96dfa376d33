"""The ceiling for bench/blog.py: a workflow with three no-op activities run concurrently.

Same shape as BlogPublishWorkflow (three activities started together, sync activities on a
thread pool) and the same worker set-up as worker.py, none of the work, so the ratio shows
what Spool's own steps cost.

    python -m bench.trivial   (worker; SPOOL_* environment like worker.py)
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="noop")
def noop(step: str) -> str:
    return step


@workflow.defn(name="TrivialThreeStepWorkflow")
class TrivialThreeStepWorkflow:
    @workflow.run
    async def run(self, name: str) -> list[str]:
        return list(await asyncio.gather(*(
            workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
            for step in ("a", "b", "c"))))


async def main() -> None:
    from spool import observability
    from spool.config import get_settings
    from spool.temporal import connect
    from worker import QueueWork, build_workers, default_concurrency

    settings = get_settings()
    # Everything as worker.py sets it up, so only the workflow and activities differ: its
    # telemetry and client, its Worker options, its concurrency and thread pool.
    observability.start_worker_telemetry(settings)
    client = await connect(settings, wait_seconds=30)
    plan = [QueueWork(name=settings.queue_pipeline, workflows=[TrivialThreeStepWorkflow],
                      activities=[noop],
                      max_concurrent_activities=default_concurrency(settings, "pipeline"))]
    threads = sum(work.max_concurrent_activities for work in plan) + 4
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="activity") as pool:
        [worker] = build_workers(client, plan, pool, grace_seconds=30.0)
        print("worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
