"""A worker that dies (SIGKILL) right after record_post_for_author commits.

It simulates the worst moment for a non-idempotent step: the database transaction is
durable, but Temporal never hears the activity completed, so the step will be retried.

    python -m tests.support.crash_worker   (configured through SPOOL_* environment variables)
"""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio import activity
from temporalio.worker import Worker

from activities.blog import BlogActivities
from spool.config import Settings
from spool.models import Post, RecordPostResult
from spool.temporal import connect
from workflows.blog import BlogPublishWorkflow


class CrashAfterCommit(BlogActivities):
    @activity.defn(name="record_post_for_author")
    def record_post_for_author(self, post: Post) -> RecordPostResult:
        result = super().record_post_for_author(post)
        print(f"committed counted={result.counted}; killing myself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        return result


async def main() -> None:
    settings = Settings()
    client = await connect(settings, wait_seconds=10)
    acts = CrashAfterCommit(settings)
    with ThreadPoolExecutor(8) as pool:
        worker = Worker(
            client,
            task_queue=settings.queue_pipeline,
            workflows=[BlogPublishWorkflow],
            activities=acts.activities(),
            activity_executor=pool,
        )
        print("crash worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
