"""HTTP API acknowledgement latency, with the worker stopped and running, in one run.

    .venv/bin/python bench/api.py [--clients 100] [--posts-per-client 3] [--uploads 6]

Starts its own Temporal dev server (persistent SQLite, as `make up`), the API with uvicorn
(`python -m api`, its own process) on a free port, and measures:
- POST /v1/posts from N concurrent clients (one HTTP connection each, unique posts);
- POST /v1/videos of a 50 MB file, one at a time (streamed to storage, then the job started);
first with no worker polling (acknowledgement must not depend on workers), then with a
worker process running every queue. Prints p50/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devstack.proc import (  # noqa: E402
    free_port,
    start_process,
    stop_process,
    wait_for_port,
    wait_until,
)
from devstack.temporal import DevServer  # noqa: E402

API_KEY = "bench-key"
UPLOAD_BYTES = 50 * 1024 * 1024


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def spool_env(temporal: str, data_dir: Path, api_port: int) -> dict[str, str]:
    return {"SPOOL_TEMPORAL_ADDRESS": temporal, "SPOOL_DATA_DIR": str(data_dir),
            "SPOOL_API_PORT": str(api_port), "SPOOL_API_KEYS": f'["{API_KEY}"]',
            "SPOOL_MAX_UPLOAD_BYTES": str(UPLOAD_BYTES + 1024 * 1024), "HF_HUB_OFFLINE": "1",
            "SPOOL_LOG_LEVEL": "WARNING"}


async def bench_posts(base: str, clients: int, per_client: int, tag: str) -> list[float]:
    acks: list[float] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def one_client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for i in range(per_client):
                post = {"post_id": f"bench-{tag}-{n}-{i}", "author_id": f"author-{n % 10}",
                        "title": f"Bench post {n} {i}", "body": "Durable words. " * 20,
                        "followers": []}
                t0 = time.perf_counter()
                r = await http.post("/v1/posts", json=post, headers=headers)
                acks.append(time.perf_counter() - t0)
                if r.status_code != 202:
                    raise RuntimeError(f"POST /v1/posts: {r.status_code} {r.text}")

    await asyncio.gather(*(one_client(n) for n in range(clients)))
    return acks


async def bench_uploads(base: str, count: int, source: Path) -> list[float]:
    acks: list[float] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        for _ in range(count):
            with source.open("rb") as fh:
                t0 = time.perf_counter()
                r = await http.post("/v1/videos", headers=headers,
                                    files={"file": ("big.mp4", fh, "video/mp4")},
                                    data={"captions": "false"})
                acks.append(time.perf_counter() - t0)
            if r.status_code != 202:
                raise RuntimeError(f"POST /v1/videos: {r.status_code} {r.text}")
    return acks


def row(name: str, worker: str, acks: list[float]) -> str:
    return (f"{name:<28} {worker:<8} {len(acks):>5} {percentile(acks, 50) * 1000:>9.1f} "
            f"{percentile(acks, 99) * 1000:>9.1f}")


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="spool-bench-api-"))
    logs = REPO / "artifacts" / "logs"
    server = DevServer(port=free_port(), ui_port=None, db_filename=tmp / "temporal.db",
                       log_path=logs / "bench-api-temporal.log")
    server.start()
    api_port = free_port()
    env = spool_env(server.address, tmp / "data", api_port)
    api = start_process([sys.executable, "-m", "api"], logs / "bench-api-uvicorn.log", env=env,
                        cwd=REPO)
    worker = None
    source = tmp / "big.bin"
    source.write_bytes(os.urandom(UPLOAD_BYTES))
    base = f"http://127.0.0.1:{api_port}"
    rows: list[str] = []
    try:
        wait_for_port(api_port, 60, api, "API", logs / "bench-api-uvicorn.log")
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/readyz")).status_code == 200
        for phase in ("stopped", "running"):
            if phase == "running":
                log = logs / "bench-api-worker.log"
                log.write_text("")
                worker = start_process([sys.executable, "worker.py"], log, env=env, cwd=REPO)
                wait_until(lambda log=log: "worker ready" in log.read_text(), 120, worker,
                           "worker", log)
            acks = await bench_posts(base, args.clients, args.posts_per_client,
                                     f"{phase}-{uuid.uuid4().hex[:6]}")
            rows.append(row(f"POST /v1/posts x{args.clients} conc", phase, acks))
            acks = await bench_uploads(base, args.uploads, source)
            rows.append(row("POST /v1/videos 50 MB", phase, acks))
    finally:
        stop_process(worker)
        stop_process(api)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nSpool API acknowledgement latency ({platform.node()}, {os.cpu_count()} CPUs; "
          "API, worker and Temporal on this machine)")
    print(f"{'request':<28} {'worker':<8} {'n':>5} {'p50 ms':>9} {'p99 ms':>9}")
    for line in rows:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--posts-per-client", type=int, default=3)
    parser.add_argument("--uploads", type=int, default=6)
    args = parser.parse_args()
    t0 = time.perf_counter()
    asyncio.run(main_async(args))
    print(f"(bench took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
