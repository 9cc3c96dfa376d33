"""The ceiling for bench/blog.py: a workflow with three no-op activities run concurrently.

Same shape as BlogPublishWorkflow (three activities started together, sync activities on a
thread pool), none of the work, so the ratio shows what Spool's own steps cost.

    python -m bench.trivial   (worker; SPOOL_* environment like worker.py)
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker


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
    from spool.config import get_settings
    from spool.temporal import connect
    from worker import default_concurrency

    settings = get_settings()
    client = await connect(settings, wait_seconds=30)
    threads = default_concurrency(settings, "pipeline")
    with ThreadPoolExecutor(threads + 4) as pool:
        worker = Worker(client, task_queue=settings.queue_pipeline,
                        workflows=[TrivialThreeStepWorkflow], activities=[noop],
                        activity_executor=pool, max_concurrent_activities=threads)
        print("worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
