"""Spool's own programs (worker.py, starter.py) started as child processes of a test."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from tests.support.paths import REPO


def worker_env(settings, **queues: str) -> dict[str, str]:
    return {
        **os.environ,
        "SPOOL_TEMPORAL_ADDRESS": settings.temporal_address,
        "SPOOL_DATA_DIR": str(settings.data_dir),
        "SPOOL_QUEUE_PIPELINE": queues.get("pipeline", settings.queue_pipeline),
        "SPOOL_QUEUE_MEDIA": queues.get("media", settings.queue_media),
        "SPOOL_QUEUE_CAPTIONS": queues.get("captions", settings.queue_captions),
    }


async def start_worker(
    env: dict[str, str], *args: str, module: str | None = None
) -> asyncio.subprocess.Process:
    """worker.py (or a test wrapper of it) with ``args``, once it has said it is ready."""
    entry = ["-m", module] if module else ["worker.py"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *entry,
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    seen = b""
    while b"worker ready" not in seen:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise AssertionError(f"worker exited before it was ready:\n{seen.decode()}")
        seen += line
    # Keep draining its output so a chatty worker never blocks on a full pipe.
    asyncio.get_running_loop().create_task(proc.stdout.read())
    return proc


async def stop_worker(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 120)
