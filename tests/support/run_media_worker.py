"""A media-queue worker in its own process, for the test that SIGKILLs one mid-transcode.

Usage: python -m tests.support.run_media_worker ADDRESS DATA_DIR MEDIA_QUEUE paced|normal

``paced`` reads every ffmpeg input at its native frame rate, so a transcode of an N-second
clip lasts at least N seconds on any machine: the test can catch it in the middle.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.worker import Worker

from activities.video import VideoActivitySet
from spool.config import Settings
from spool.media import tools
from spool.temporal import connect
from tests.support.media_clips import pace_inputs


async def main(address: str, data_dir: str, queue: str, pace: str) -> None:
    if pace == "paced":
        tools.INPUT_OPTIONS = pace_inputs()
    settings = Settings(temporal_address=address, data_dir=Path(data_dir), queue_media=queue)
    client = await connect(settings, wait_seconds=30)
    acts = VideoActivitySet.from_settings(settings)
    worker = Worker(
        client,
        task_queue=queue,
        activities=acts.media_activities(),
        max_heartbeat_throttle_interval=timedelta(seconds=1),
    )
    print("ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
