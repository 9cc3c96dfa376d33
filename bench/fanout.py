"""A post announced to an author's whole audience, with the log notifier, on the embedded stack.

    .venv/bin/python bench/fanout.py [--followers 100000 1000000] [--no-kill]

For each audience size: a fresh SQLite database (as `make up` has it) is filled with the
author's followers (multi-row inserts, one transaction), a dev server and a pipeline worker
(worker.py --queue pipeline) run, and a post is published without a `followers` list. Two
runs per size:
- clean: followers notified a second (publish to job end), the peak RSS (VmHWM) of the
  worker and, over SPOOL_FANOUT_CHILD_ABOVE followers, of the child process walking the
  audience (spool/fanout_child.py), and two latencies sampled every 0.2 s throughout: the
  raw `status` query (`handle.query("status")`, answered by a worker) and the status a user
  gets (spool/service/jobs.py `live_status`, as GET /v1/posts/{id} and the command line ask
  for it: one describe, the run's memo with the heartbeat's progress merged in, no worker);
- killed: as a deployment runs, a second pipeline worker polls too (started once the first
  holds the workflow and runs the fan-out, so the one killed is the one holding both). Once
  half the audience is walked (read from the step's heartbeat) and the second is ready, the
  first is SIGKILLed (a walk that ends before is not: the row says "no kill"); the survivor
  answers the queries and, after the heartbeat timeout, resumes the walk. The first query
  after the kill is reported on its own (it waits for the dead worker's sticky queue to time
  out, worker.py STICKY_TIMEOUT, then is replayed by the survivor), apart from the
  steady-state percentiles; so is the first user status sent after the kill (its own
  latency: it waits for no worker). The outbox is read back: missed followers, followers given two
  different notifications (two keys), and notifications re-sent under the same key (the
  at-least-once window of one mark batch, which receivers deduplicate on).
Each run also prints the 1-minute load average (at its start and its highest) and the CPU
seconds the worker processes ran against the seconds they were ready to run but waited for a
CPU (/proc schedstat): a slow query on a machine whose cores are taken shows there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from temporalio.service import RPCError  # noqa: E402

from bench.procstat import CpuTime, load_average  # noqa: E402
from devstack.proc import free_port, start_process, stop_process, wait_until  # noqa: E402
from devstack.temporal import DevServer  # noqa: E402
from spool.config import Settings  # noqa: E402
from spool.db import get_engine  # noqa: E402
from spool.models import Post  # noqa: E402
from spool.service.jobs import live_status, start_blog  # noqa: E402
from spool.temporal import connect, exit_process  # noqa: E402

AUTHOR = "famous"
INSERT_CHUNK = 100_000
# The status path's own deadline, as the API's (spool/service/posts.py): past it, "Temporal
# did not answer in time" (counted as unavailable).
STATUS_SECONDS = 5.0


def fill_followers(settings: Settings, count: int) -> float:
    """``count`` followers of AUTHOR, inserted in chunks by executemany of one prepared
    statement in one transaction; the seconds it took."""
    get_engine(settings).dispose()  # the schema made at head; the bench writes on its own
    path = settings.resolved_database_url.removeprefix("sqlite:///")
    started = time.perf_counter()
    db = sqlite3.connect(path)
    with db:
        for first in range(0, count, INSERT_CHUNK):
            rows = (
                (AUTHOR, f"follower-{i:08d}")
                for i in range(first, min(count, first + INSERT_CHUNK))
            )
            db.executemany("INSERT INTO followers (author_id, follower_id) VALUES (?, ?)", rows)
    db.close()
    return time.perf_counter() - started


def start_worker(settings: Settings, log: Path):
    env = {
        "SPOOL_TEMPORAL_ADDRESS": settings.temporal_address,
        "SPOOL_DATA_DIR": str(settings.data_dir),
        "SPOOL_QUEUE_PIPELINE": settings.queue_pipeline,
        "SPOOL_NOTIFIER": "log",
        "SPOOL_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(REPO / ".cache/pycache"),
    }
    proc = start_process(
        [sys.executable, "worker.py", "--queue", "pipeline"], log, env=env, cwd=REPO
    )
    wait_until(
        lambda: log.exists() and "worker ready" in log.read_text(), 120, proc, "bench worker", log
    )
    return proc


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB (0 once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_of(pid: int) -> list[int]:
    """The process's children (the fan-out's child process, when one runs)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@dataclass
class Run:
    followers: int
    killed: bool
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    query_ms: list[float] = field(default_factory=list)  # steady state: not the post-kill one
    query_errors: int = 0
    post_kill_ms: float | None = None  # the first status query sent after the SIGKILL
    # The status a user gets (jobs.live_status): every answer's latency but the post-kill one.
    status_ms: list[float] = field(default_factory=list)
    status_unavailable: int = 0  # answers saying why there is no status (e.g. no worker yet)
    status_post_kill_ms: float | None = None  # the first one sent after the SIGKILL
    kill_clock: float | None = None  # perf_counter() at the SIGKILL
    killed_at: int = 0  # followers walked when the worker was killed
    load: list[float] = field(default_factory=list)  # 1-minute load average, each sample
    cpu: CpuTime = field(default_factory=CpuTime)  # the workers' own, not the child's
    missed: int = 0
    two_keys: int = 0
    resent: int = 0
    history_events: int = 0


@dataclass
class Workers:
    """The run's worker processes: the first (which takes the workflow and the fan-out),
    and in a killed run a second, started once the first holds both."""

    settings: Settings
    log: Path
    started: list = field(default_factory=list)
    second: asyncio.Task | None = None
    killed: bool = False

    def start(self) -> None:
        self.started.append(start_worker(self.settings, self.log))

    def start_second(self) -> None:
        """Starts the second worker without stopping the watch (a start takes seconds)."""
        self.second = asyncio.create_task(asyncio.to_thread(self.start))

    def kill_first(self) -> None:
        os.kill(self.started[0].pid, signal.SIGKILL)
        self.started[0].wait()
        self.killed = True

    def live(self) -> list[int]:
        return [w.pid for w in self.started if w.poll() is None]

    def peak_rss_mb(self) -> float:
        """The live worker's peak with its children's added: what the host must hold."""
        return max(
            (
                peak_rss_mb(pid) + sum(peak_rss_mb(c) for c in children_of(pid))
                for pid in self.live()
            ),
            default=0.0,
        )

    async def stop(self) -> None:
        if self.second is not None:
            await asyncio.gather(self.second, return_exceptions=True)
        for worker in self.started:
            stop_process(worker)


async def fan_out_progress(client, handle) -> tuple[int, str]:
    """Followers walked so far (notify_followers' heartbeat details) and the identity of the
    worker running the step ("" before it runs)."""
    desc = await handle.describe()
    for pending in desc.raw_description.pending_activities:
        if pending.activity_id != "notify_followers":
            continue
        walked = 0
        if pending.heartbeat_details.payloads:
            details = await client.data_converter.decode(pending.heartbeat_details.payloads)
            if details and isinstance(details[-1], dict):
                walked = int(details[-1].get("walked") or 0)
        return walked, pending.last_worker_identity
    return 0, ""


async def sticky_holder(handle) -> str:
    """The identity of the worker that completed the workflow's last task: the one whose
    sticky queue its next tasks and its queries are sent to."""
    identity = ""
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_task_completed_event_attributes"):
            identity = event.workflow_task_completed_event_attributes.identity
    return identity


async def query_status(handle, run: Run, killed_at: float | None) -> None:
    """One status query, timed; the first answer after the SIGKILL is timed from the kill
    and kept apart from the steady state."""
    t0 = time.perf_counter()
    try:
        await handle.query("status")
    except RPCError:
        run.query_errors += 1
        return
    if killed_at is not None and run.post_kill_ms is None:
        run.post_kill_ms = (time.perf_counter() - killed_at) * 1000
    else:
        run.query_ms.append((time.perf_counter() - t0) * 1000)


async def sample_status(client, job_id: str, run: Run) -> None:
    """Until cancelled, every 0.2 s: the status a user gets, timed; the first one sent after
    the SIGKILL is kept apart. Its own task, so a raw query waiting on the dead worker's
    sticky queue holds up no sample."""
    while True:
        sent = time.perf_counter()
        after_kill = run.kill_clock is not None and sent >= run.kill_clock
        view = await live_status(client, job_id, STATUS_SECONDS)
        ms = (time.perf_counter() - sent) * 1000
        if view is None or view.unavailable:
            run.status_unavailable += 1
        if after_kill and run.status_post_kill_ms is None:
            run.status_post_kill_ms = ms
        else:
            run.status_ms.append(ms)
        await asyncio.sleep(0.2)


async def kill_when_due(client, handle, run: Run, workers: Workers) -> float | None:
    """Starts the second worker once the first runs the fan-out, then SIGKILLs the first
    once half the audience is walked and the second is ready; when it did, the time."""
    walked, identity = await fan_out_progress(client, handle)
    first = f"{workers.started[0].pid}@"
    if workers.second is None and identity.startswith(first):
        workers.start_second()
    if workers.second is None or not workers.second.done() or walked < run.followers // 2:
        return None
    workers.second.result()  # a second worker that failed to start fails the run
    holder = await sticky_holder(handle)
    if not (identity.startswith(first) and holder.startswith(first)):
        raise RuntimeError(f"the first worker should hold both: step {identity}, run {holder}")
    workers.kill_first()
    run.killed_at = walked
    return time.perf_counter()


async def watch(client, handle, run: Run, workers: Workers) -> None:
    """Until the job ends: the status query's latency, the workers' peak RSS, CPU time and
    the load, and (a killed run) the SIGKILL once half the audience is walked."""
    killed_at: float | None = None
    while True:
        await query_status(handle, run, killed_at)
        run.peak_rss_mb = max(run.peak_rss_mb, workers.peak_rss_mb())
        run.cpu.sample(workers.live())
        run.load.append(load_average())
        if run.killed and killed_at is None:
            killed_at = await kill_when_due(client, handle, run, workers)
            run.kill_clock = killed_at
        await asyncio.sleep(0.2)


def read_outbox(settings: Settings, event_id: str, followers: int, run: Run) -> None:
    per_recipient: Counter[str] = Counter()
    keys: dict[str, set[str]] = {}
    with settings.resolved_notify_outbox.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["event_id"] != event_id:
                continue
            per_recipient[record["recipient"]] += 1
            keys.setdefault(record["recipient"], set()).add(record["key"])
    run.missed = followers - len(per_recipient)
    run.two_keys = sum(1 for k in keys.values() if len(k) > 1)
    run.resent = sum(per_recipient.values()) - len(per_recipient)


async def first_of(result, watcher: asyncio.Task) -> None:
    """The job's result, unless the watch fails first (its error is the run's)."""
    job = asyncio.ensure_future(result)
    await asyncio.wait([job, watcher], return_when=asyncio.FIRST_COMPLETED)
    failed = watcher.exception() if watcher.done() and not watcher.cancelled() else None
    if failed is not None:
        job.cancel()
        raise failed
    await job


async def one_run(client, base: Settings, tmp: Path, followers: int, killed: bool) -> Run:
    name = f"{followers}-{'killed' if killed else 'clean'}"
    settings = base.model_copy(
        update={"data_dir": tmp / name, "queue_pipeline": f"fanout-{uuid.uuid4().hex[:6]}"}
    )
    fill_seconds = fill_followers(settings, followers)
    print(f"  {name}: {followers} followers inserted in {fill_seconds:.1f} s", flush=True)
    workers = Workers(settings, tmp / f"{name}.log")
    workers.start()
    run = Run(followers=followers, killed=killed)
    post = Post(post_id=f"big-{name}", author_id=AUTHOR, title="To everyone", body="Hello.")
    run.load.append(load_average())
    watcher = sampler = None
    try:
        started = time.perf_counter()
        job = await start_blog(client, settings, post)
        handle = client.get_workflow_handle(job.job_id)
        watcher = asyncio.create_task(watch(client, handle, run, workers))
        sampler = asyncio.create_task(sample_status(client, job.job_id, run))
        await first_of(handle.result(), watcher)
        run.seconds = time.perf_counter() - started
        run.peak_rss_mb = max(run.peak_rss_mb, workers.peak_rss_mb())
        run.history_events = len((await handle.fetch_history()).events)
    finally:
        for task in (watcher, sampler):
            if task is not None:
                task.cancel()
        await workers.stop()
    read_outbox(settings, f"post-published:{post.post_id}", followers, run)
    return run


def percentiles(samples: list[float]) -> str:
    """p50/p99/max in ms."""
    q = sorted(samples) or [0.0]
    p99 = q[min(len(q) - 1, int(0.99 * (len(q) - 1)))]
    return f"{statistics.median(q):.0f}/{p99:.0f}/{q[-1]:.0f}"


def row(r: Run) -> str:
    query = percentiles(r.query_ms)
    if r.query_errors:
        query += f" ({r.query_errors} failed)"
    status = percentiles(r.status_ms)
    if r.status_unavailable:
        status += f" ({r.status_unavailable} unavail.)"
    after_kill = "-" if r.post_kill_ms is None else f"{r.post_kill_ms:.0f}"
    status_after_kill = "-" if r.status_post_kill_ms is None else f"{r.status_post_kill_ms:.0f}"
    if r.killed:
        # A walk that ends before the second worker is ready is never killed.
        after_kill = (
            f"{after_kill} @{100 * r.killed_at / r.followers:.0f}%" if r.killed_at else "no kill"
        )
    load = f"{r.load[0]:.1f}/{max(r.load):.1f}" if r.load else "-"
    cpu, waiting = r.cpu.seconds()
    return (
        f"{r.followers:>10} {'killed' if r.killed else 'clean':>7} {r.seconds:>8.1f} "
        f"{r.followers / r.seconds:>8.0f} {r.peak_rss_mb:>7.0f}MB {query:>17} "
        f"{after_kill:>12} {status:>18} {status_after_kill:>13} {r.missed:>6} {r.two_keys:>6} "
        f"{r.resent:>7} {r.history_events:>6} "
        f"{load:>9} {cpu:>6.1f}/{waiting:<6.1f}"
    )


def report(runs: list[Run]) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}, SQLite (WAL), log notifier, dev server on SQLite"
    )
    print(
        f"{'followers':>10} {'run':>7} {'seconds':>8} {'per s':>8} {'peak RSS':>9} "
        f"{'query p50/p99/max':>17} {'post-kill ms':>12} {'status p50/p99/max':>18} "
        f"{'status p-k ms':>13} {'missed':>6} {'2 keys':>6} "
        f"{'re-sent':>7} {'events':>6} {'load':>9} {'worker cpu/wait s'}"
    )
    for r in runs:
        print(row(r))


async def main(args) -> None:
    with tempfile.TemporaryDirectory(prefix="spool-fanout-") as tmpdir:
        tmp = Path(tmpdir)
        server = DevServer(
            port=free_port(), ui_port=None, db_filename=tmp / "temporal.db", log_path=tmp / "t.log"
        )
        runs: list[Run] = []
        with server:
            base = Settings(temporal_address=server.address, data_dir=tmp / "data")
            client = await connect(base, wait_seconds=30)
            for followers in args.followers:
                for killed in (False, True) if args.kill else (False,):
                    runs.append(await one_run(client, base, tmp, followers, killed))
                    report(runs[-1:])
        print()
        report(runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-kill", dest="kill", action="store_false")
    asyncio.run(main(parser.parse_args()))
    exit_process(0)
