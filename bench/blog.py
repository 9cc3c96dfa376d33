"""Blog pipeline throughput on the embedded stack, against a no-op ceiling, in one run.

    .venv/bin/python bench/blog.py [--posts 200] [--rounds 2]

Starts a persistent dev server exactly as `make up` does (SQLite, WAL pragmas), then
alternates rounds of: N concurrent Spool publishes (real worker process, SQLite index, three
followers each) and N concurrent trivial workflows of the same shape (three no-op activities,
worker process with the same concurrency). Prints acknowledgement latency p50/p99, end-to-end
posts/s, and Spool's throughput as a fraction of the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devstack.proc import free_port, start_process, stop_process, wait_until  # noqa: E402
from devstack.temporal import DevServer  # noqa: E402
from spool.config import Settings  # noqa: E402
from spool.jobs import start_blog_job  # noqa: E402
from spool.models import Post  # noqa: E402
from spool.temporal import connect, exit_process  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def start_worker(module_args: list[str], settings: Settings, log: Path):
    env = {"SPOOL_TEMPORAL_ADDRESS": settings.temporal_address,
           "SPOOL_DATA_DIR": str(settings.data_dir), "SPOOL_QUEUE_PIPELINE":
           settings.queue_pipeline, "HF_HUB_OFFLINE": "1", "SPOOL_LOG_LEVEL": "WARNING"}
    proc = start_process([sys.executable, *module_args], log, env=env, cwd=REPO)
    wait_until(lambda: log.exists() and "worker ready" in log.read_text(), 120, proc,
               "bench worker", log)
    return proc


async def measure(starts, wait_all) -> dict:
    """starts: coroutine factories returning a job id; wait_all awaits every job's end."""
    acks: list[float] = []

    async def timed(factory):
        t0 = time.perf_counter()
        job_id = await factory()
        acks.append(time.perf_counter() - t0)
        return job_id

    t0 = time.perf_counter()
    job_ids = await asyncio.gather(*(timed(f) for f in starts))
    await wait_all(job_ids)
    elapsed = time.perf_counter() - t0
    return {"p50_ms": percentile(acks, 50) * 1000, "p99_ms": percentile(acks, 99) * 1000,
            "per_s": len(job_ids) / elapsed, "seconds": elapsed}


async def run_round(client, base: Settings, posts: int, tmp: Path, kind: str) -> dict:
    queue = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"queue_pipeline": queue})
    module = ["worker.py", "--queue", "pipeline"] if kind == "spool" else ["-m", "bench.trivial"]
    worker = start_worker(module, settings, tmp / f"{queue}.log")
    try:
        async def wait_all(ids):
            await asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids))

        if kind == "spool":
            run_id = uuid.uuid4().hex[:6]

            def factory(n):
                post = Post(post_id=f"bench-{run_id}-{n}", author_id=f"author-{n % 20}",
                            title=f"Benchmark post {n}", body="Measuring the pipeline. " * 20,
                            tags=["bench"], followers=["f1", "f2", "f3"])
                return lambda: _job_id(start_blog_job(client, settings, post))
        else:
            def factory(n):
                return lambda: _start_trivial(client, queue, f"trivial-{queue}-{n}")
        return await measure([factory(n) for n in range(posts)], wait_all)
    finally:
        stop_process(worker)


async def _job_id(coro) -> str:
    return (await coro).job_id


async def _start_trivial(client, queue: str, wf_id: str) -> str:
    handle = await client.start_workflow("TrivialThreeStepWorkflow", wf_id, id=wf_id,
                                         task_queue=queue)
    return handle.id


async def main(args) -> None:
    with tempfile.TemporaryDirectory(prefix="spool-bench-") as tmpdir:
        tmp = Path(tmpdir)
        server = DevServer(port=free_port(), ui_port=None, db_filename=tmp / "temporal.db",
                           log_path=tmp / "temporal.log")
        with server:
            base = Settings(temporal_address=server.address, data_dir=tmp / "data")
            client = await connect(base, wait_seconds=30)
            results: dict[str, list[dict]] = {"spool": [], "trivial": []}
            for _ in range(args.rounds):
                for kind in ("trivial", "spool"):
                    results[kind].append(await run_round(client, base, args.posts, tmp, kind))
    best = {k: max(v, key=lambda r: r["per_s"]) for k, v in results.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, dev server on SQLite (WAL)")
    print(f"{args.posts} concurrent starts per round, {args.rounds} rounds, best round shown")
    print(f"{'':24}{'ack p50':>10}{'ack p99':>10}{'end-to-end':>14}")
    for kind, label in (("spool", "Spool publish"), ("trivial", "3 no-op activities")):
        r = best[kind]
        print(f"{label:24}{r['p50_ms']:>8.0f}ms{r['p99_ms']:>8.0f}ms{r['per_s']:>10.1f}/s")
    print(f"Spool / ceiling throughput: {best['spool']['per_s'] / best['trivial']['per_s']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
    exit_process(0)
