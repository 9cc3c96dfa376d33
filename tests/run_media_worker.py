"""A media-queue worker in its own process, for the test that SIGKILLs one mid-transcode.

Usage: python -m tests.run_media_worker ADDRESS DATA_DIR MEDIA_QUEUE
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.worker import Worker

from activities.video import VideoActivities
from spool.config import Settings
from spool.temporal import connect


async def main(address: str, data_dir: str, queue: str, preset: str) -> None:
    settings = Settings(temporal_address=address, data_dir=Path(data_dir), queue_media=queue,
                        x264_preset=preset)
    client = await connect(settings, wait_seconds=30)
    acts = VideoActivities(settings)
    worker = Worker(client, task_queue=queue, activities=acts.media_activities(),
                    max_heartbeat_throttle_interval=timedelta(seconds=1))
    print("ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
