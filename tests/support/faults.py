"""The fault matrix's shared means (tests/test_faults_video.py, test_faults_blog.py,
test_faults_stack.py): waiting for jobs through an outage, recovery figures, and the
embedded stack started, SIGKILLed and reached again.

Faults are held by gates, never by guessed delays: a fault strikes once a condition is seen
(a transcode heartbeating progress, N publishes accepted, a row counted), and the only fixed
wait is an outage the scenario itself specifies (Elasticsearch down for 30 s). Deadlines are
generous and only turn a hang into a failure. Recovery times are printed (run with -s), never
asserted: figures belong to bench/.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from devstack.proc import free_port
from devstack.stack import EmbeddedStack
from spool.config import Settings
from spool.temporal import connect
from tests.support import waiting
from tests.support.history import highest_attempt_by_type
from tests.support.services import service_missing

LONG = 240.0  # seconds: only turns a hang into a failure (below pytest-timeout's 300)

# The fault tests wait longer (a restarted service) and poll less often.
eventually = functools.partial(waiting.eventually, within=LONG, every=0.2)


def figure(name: str, seconds: float) -> None:
    """A recovery time, printed for the report (never asserted)."""
    print(f"\n[fault figure] {name}: {seconds:.1f} s", flush=True)


async def final_result(client: Client, job_id: str) -> dict:
    """The job's result, waiting through a server restart."""
    deadline = time.monotonic() + LONG
    while True:
        try:
            return await client.get_workflow_handle(job_id).result()
        except RPCError as exc:
            # A job the server no longer knows was accepted, then lost.
            assert exc.status != RPCStatusCode.NOT_FOUND, f"job {job_id} lost: {exc}"
            assert time.monotonic() < deadline, f"{job_id} never finished"
            await asyncio.sleep(0.5)


async def all_final(client: Client, job_ids: Iterable[str]) -> dict[str, dict]:
    ids = list(dict.fromkeys(job_ids))
    results = await asyncio.gather(*(final_result(client, j) for j in ids))
    return dict(zip(ids, results, strict=True))


async def retried_steps(client: Client, job_ids: Iterable[str]) -> Counter:
    """How many jobs ran each step more than once."""
    retried: Counter = Counter()
    for job_id in job_ids:
        for name, attempt in (
            await highest_attempt_by_type(client.get_workflow_handle(job_id))
        ).items():
            retried[name] += attempt > 1
    return retried


async def on(keeper: ThreadPoolExecutor, fn: Callable, *args):
    """fn(*args) on the keeper thread (tests/support/fault_fixtures.py says why)."""
    return await asyncio.wrap_future(keeper.submit(fn, *args))


# --- the embedded stack, killed and restarted -----------------------------------------------


def start_first_stack(settings: Settings, **kwargs) -> EmbeddedStack:
    """The stack before any fault: not starting is a missing service, not a finding."""
    stack = EmbeddedStack(settings, temporal_port=free_port(), ui_port=free_port(), **kwargs)
    try:
        return stack.start()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"the embedded stack did not start: {exc}")
        raise


def kill_stack(stack: EmbeddedStack) -> None:
    """SIGKILL the dev server, the worker and the API, each process group, at once."""
    procs = [*stack.procs.values(), stack.server.proc]
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        proc.wait(30)
    stack.procs.clear()
    stack.server = None


async def stack_client(stack: EmbeddedStack) -> Client:
    return await connect(
        Settings(_env_file=None, temporal_address=stack.temporal_address), wait_seconds=60
    )
