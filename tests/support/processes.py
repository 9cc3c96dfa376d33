"""Spool's own programs (worker.py, starter.py) started as child processes of a test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from spool.config import Settings
from tests.support.paths import REPO


def spool_variables(**fields: object) -> dict[str, str]:
    """The SPOOL_<FIELD> variables that set these Settings fields in a child process."""
    return {f"SPOOL_{name.upper()}": str(value) for name, value in fields.items()}


def environ_without_spool() -> dict[str, str]:
    """This process's environment without any SPOOL_* variable: a child then has only the
    settings the test gives it."""
    return {name: value for name, value in os.environ.items() if not name.startswith("SPOOL_")}


def spool_env(settings: Settings, **queues: str) -> dict[str, str]:
    """This process's environment plus what points a child (starter.py, worker.py) at the
    test's Temporal server, data directory and queues; ``queues`` (pipeline=, media=,
    captions=) give a kind of work a queue of its own."""
    return {
        **os.environ,
        **spool_variables(
            temporal_address=settings.temporal_address,
            data_dir=settings.data_dir,
            queue_pipeline=queues.get("pipeline", settings.queue_pipeline),
            queue_media=queues.get("media", settings.queue_media),
            queue_captions=queues.get("captions", settings.queue_captions),
        ),
    }


async def run_starter(
    env: dict[str, str], *args: str, within: float = 120
) -> subprocess.CompletedProcess:
    """starter.py with ``args`` run to its end (killed after ``within`` seconds), off the
    event loop, which may serve what the command talks to."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "starter.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=within,
    )


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
    """Its exit code after a stop signal (SIGTERM), as an orchestrator would stop it."""
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 120)
