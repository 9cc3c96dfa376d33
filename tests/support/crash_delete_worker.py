"""A worker that dies (SIGKILL) in the middle of deleting a video's objects: a few are gone,
the rest are still there, and Temporal never hears how the attempt ended.

    python -m tests.support.crash_delete_worker   (configured through SPOOL_* variables)
"""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio import activity
from temporalio.worker import Worker

from activities.video import DeletionActivities
from activities.webhooks import WebhookActivities
from spool.config import Settings
from spool.models import DeleteObjectsInput, DeleteObjectsResult
from spool.storage import keys
from spool.storage.transfers import Transfers
from spool.temporal import connect
from workflows.deletion import VideoDeletionWorkflow

DELETED_BEFORE_DYING = 3


class CrashMidDelete(DeletionActivities):
    @activity.defn(name="video.delete_objects")
    async def delete_objects(self, inp: DeleteObjectsInput) -> DeleteObjectsResult:
        found = self.storage.list_prefix(keys.video_prefix(inp.video_id))
        for key in found[:DELETED_BEFORE_DYING]:
            self.storage.delete(key)
        print(f"deleted {DELETED_BEFORE_DYING} of {len(found)}; killing myself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


async def main() -> None:
    settings = Settings()
    client = await connect(settings, wait_seconds=10)
    acts = CrashMidDelete(settings, Transfers.from_settings(settings))
    with ThreadPoolExecutor(8) as pool:
        worker = Worker(
            client,
            task_queue=settings.queue_pipeline,
            workflows=[VideoDeletionWorkflow],
            activities=[
                acts.mark_deleting,
                acts.stop_job,
                acts.delete_objects,
                acts.delete_records,
                *WebhookActivities(settings).activities(),
            ],
            activity_executor=pool,
        )
        print("worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
