"""POST /v1/posts acknowledgement against raw SDK starts of the same workflow, in one run.

    .venv/bin/python bench/api.py [--requests 1000] [--concurrency 100] [--rounds 2]

Starts a Temporal dev server as `make up` does (persistent SQLite, WAL) and the API
(`python -m api`: uvicorn, its own process) on free ports. No worker polls, so only the
acknowledgement is measured. Each round runs both rows, in alternating order:
- api: vegeta (compiled, its own process; built by bench/load.py into .cache/bin) sends
  ``--requests`` distinct POST /v1/posts over ``--concurrency`` connections, each sending its
  next request when the last one is answered;
- raw: a separate Python process starts the same workflow, with the same input and id
  policies, through the Temporal SDK's ``client.start_workflow`` from ``--concurrency``
  concurrent tasks.
Prints each row's p50, p99 and acknowledgements per second (latencies pooled over the rounds,
after an unmeasured warm-up of each row) and the ratios; the goal is API p99 ≤ 1.5× raw p99
and API throughput ≥ 0.8× raw.

    .venv/bin/python bench/api.py raw --address HOST:PORT --requests N --concurrency C --tag T

is the raw row's process: it prints one JSON line of latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.procstat import cpu_seconds  # noqa: E402
from devstack.proc import (  # noqa: E402
    free_port,
    start_process,
    stop_process,
    wait_for_port,
)
from devstack.temporal import DevServer  # noqa: E402
from spool.temporal import exit_process  # noqa: E402

API_KEY = "bench-key"
BODY = "Durable words. " * 20
# The goal of issue 7: the API's own cost on top of one workflow start.
GOAL_P99_RATIO = 1.5
GOAL_THROUGHPUT_RATIO = 0.8


def post_fields(tag: str, n: int) -> dict:
    """The n-th distinct post of a batch: the same shape in both rows."""
    return {
        "post_id": f"bench-{tag}-{n}",
        "author_id": f"author-{n % 10}",
        "title": f"Bench post {n}",
        "body": BODY,
        "followers": ["f1", "f2", "f3"],
    }


@dataclass
class Row:
    latencies: list[float]  # seconds, one per acknowledged request
    seconds: float  # from the first request sent to the last answer
    errors: int
    # CPU seconds spent by the client side (the API process, or the raw row's Python process)
    # and by the dev server while the row ran: where the time goes.
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def pooled(rows: list[Row]) -> Row:
    return Row(
        [lat for r in rows for lat in r.latencies],
        sum(r.seconds for r in rows),
        sum(r.errors for r in rows),
        sum(r.client_cpu for r in rows),
        sum(r.server_cpu for r in rows),
    )


def measured(run, server_pid: int, api_pid: int | None = None) -> Row:
    """run() -> Row, with the CPU time the dev server (and the API) spent meanwhile; the raw
    row's process reports its own."""
    server0 = cpu_seconds(server_pid)
    api0 = cpu_seconds(api_pid) if api_pid is not None else 0.0
    row = run()
    row.server_cpu = cpu_seconds(server_pid) - server0
    if api_pid is not None:
        row.client_cpu = cpu_seconds(api_pid) - api0
    return row


# --------------------------------------------------------------------------- the raw row


async def raw_starts(address: str, requests: int, concurrency: int, tag: str) -> dict:
    """``requests`` workflow starts from ``concurrency`` tasks, as Spool's API makes them."""
    from temporalio.client import Client
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

    from spool.config import Settings
    from spool.models import BlogPublishInput, Post, blog_workflow_id

    settings = Settings(temporal_address=address)
    client = await Client.connect(address)
    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))

    async def one_task() -> None:
        nonlocal errors
        for n in todo:  # a shared iterator: each task takes the next post when it is free
            post = Post(**post_fields(tag, n))
            inp = BlogPublishInput(post=post, index_retry_seconds=settings.index_retry_seconds)
            t0 = time.perf_counter()
            try:
                await client.start_workflow(
                    "BlogPublishWorkflow",
                    inp,
                    id=blog_workflow_id(post.post_id, post.version),
                    task_queue=settings.queue_pipeline,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except Exception:  # noqa: BLE001 - counted and reported
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_task() for _ in range(concurrency)))
    return {
        "latencies": latencies,
        "seconds": time.perf_counter() - t0,
        "errors": errors,
        "cpu": time.process_time() - cpu0,
    }


def run_raw(address: str, requests: int, concurrency: int, tag: str) -> Row:
    """The raw row in its own process, as vegeta is in its own."""
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "raw",
            "--address",
            address,
            "--requests",
            str(requests),
            "--concurrency",
            str(concurrency),
            "--tag",
            tag,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd=REPO,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Row(data["latencies"], data["seconds"], data["errors"], client_cpu=data["cpu"])


# --------------------------------------------------------------------------- the API row


def vegeta_targets(api: str, requests: int, tag: str) -> str:
    """vegeta's JSON targets: one distinct post per line."""
    header = {"Authorization": [f"Bearer {API_KEY}"], "Content-Type": ["application/json"]}
    lines = []
    for n in range(requests):
        body = base64.b64encode(json.dumps(post_fields(tag, n)).encode()).decode()
        lines.append(
            json.dumps({"method": "POST", "url": f"{api}/v1/posts", "header": header, "body": body})
        )
    return "\n".join(lines) + "\n"


def run_api(tool: Path, api: str, requests: int, concurrency: int, tag: str, tmp: Path) -> Row:
    targets, results = tmp / f"targets-{tag}.json", tmp / f"results-{tag}.bin"
    targets.write_text(vegeta_targets(api, requests, tag))
    # -rate=0 with a fixed number of workers: each sends its next request when answered, so
    # at most `concurrency` are in flight, as in the raw row. -lazy ends with the targets.
    subprocess.run(
        [
            str(tool),
            "attack",
            "-format=json",
            "-lazy",
            f"-targets={targets}",
            "-rate=0",
            f"-workers={concurrency}",
            f"-max-workers={concurrency}",
            "-timeout=120s",
            f"-output={results}",
        ],
        check=True,
        timeout=600,
    )
    encoded = subprocess.run(
        [str(tool), "encode", "-to=csv", str(results)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return row_from_vegeta_csv(encoded.stdout)


def row_from_vegeta_csv(text: str) -> Row:
    """vegeta's CSV: timestamp (ns), status code, latency (ns), bytes out, bytes in, error…"""
    latencies: list[float] = []
    spans: list[tuple[float, float]] = []
    errors = 0
    for record in csv.reader(io.StringIO(text)):
        start, code, latency, error = int(record[0]), record[1], int(record[2]), record[5]
        if code == "0" and "no targets to attack" in error:
            continue  # -lazy's end of the targets, not a request
        if code != "202":
            errors += 1
            continue
        latencies.append(latency / 1e9)
        spans.append((start / 1e9, (start + latency) / 1e9))
    seconds = max(end for _, end in spans) - min(start for start, _ in spans) if spans else 0.0
    return Row(latencies, seconds, errors)


# --------------------------------------------------------------------------- the run


def api_env(temporal: str, data_dir: Path, port: int) -> dict[str, str]:
    return {
        "SPOOL_TEMPORAL_ADDRESS": temporal,
        "SPOOL_DATA_DIR": str(data_dir),
        "SPOOL_API_PORT": str(port),
        "SPOOL_API_KEYS": f'["{API_KEY}"]',
        "HF_HUB_OFFLINE": "1",
    }


def report(rows: dict[str, list[Row]], args: argparse.Namespace, elapsed: float) -> bool:
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; dev server on SQLite (WAL), API and load on the "
        "same machine, no worker"
    )
    print(
        f"{args.requests} distinct posts per row and round, {args.concurrency} concurrent, "
        f"{args.rounds} rounds (latencies pooled)"
    )
    print(f"{'':34}{'p50':>9}{'p99':>9}{'acks/s':>9}{'errors':>8}")
    labels = {"api": "POST /v1/posts (vegeta)", "raw": "SDK start_workflow (raw)"}
    for kind in ("api", "raw"):
        for n, r in enumerate(rows[kind]):
            print(
                f"  round {n + 1} {labels[kind]:<24}{percentile(r.latencies, 50) * 1e3:>7.0f}ms"
                f"{percentile(r.latencies, 99) * 1e3:>7.0f}ms{r.per_second:>9.1f}"
                f"{r.errors:>8}"
            )
    api, raw = pooled(rows["api"]), pooled(rows["raw"])
    for kind, r in (("api", api), ("raw", raw)):
        print(
            f"{labels[kind]:<34}{percentile(r.latencies, 50) * 1e3:>7.0f}ms"
            f"{percentile(r.latencies, 99) * 1e3:>7.0f}ms{r.per_second:>9.1f}{r.errors:>8}"
        )
    for kind, r in (("api", api), ("raw", raw)):
        client = "API process" if kind == "api" else "raw client process"
        acks = len(r.latencies)
        print(
            f"CPU per ack, {labels[kind]}: {client} {r.client_cpu / acks * 1e3:.2f} ms, "
            f"dev server {r.server_cpu / acks * 1e3:.2f} ms"
        )
    p99_ratio = percentile(api.latencies, 99) / percentile(raw.latencies, 99)
    rate_ratio = api.per_second / raw.per_second
    print(
        f"API / raw: p50 {percentile(api.latencies, 50) / percentile(raw.latencies, 50):.2f}, "
        f"p99 {p99_ratio:.2f} (goal ≤ {GOAL_P99_RATIO}), throughput {rate_ratio:.2f} "
        f"(goal ≥ {GOAL_THROUGHPUT_RATIO})"
    )
    ok = (
        p99_ratio <= GOAL_P99_RATIO
        and rate_ratio >= GOAL_THROUGHPUT_RATIO
        and not api.errors
        and not raw.errors
    )
    print(f"RESULT: {'goal met' if ok else 'goal NOT met'} (bench took {elapsed:.0f} s)")
    return ok


def main(args: argparse.Namespace) -> int:
    from bench.load import vegeta

    t0 = time.perf_counter()
    tool = vegeta()
    logs = REPO / "artifacts" / "logs"
    with tempfile.TemporaryDirectory(prefix="spool-bench-api-") as tmpdir:
        tmp = Path(tmpdir)
        server = DevServer(
            port=free_port(),
            ui_port=None,
            db_filename=tmp / "temporal.db",
            log_path=logs / "bench-api-temporal.log",
        )
        api_port = free_port()
        api_log = logs / "bench-api-uvicorn.log"
        api_log.parent.mkdir(parents=True, exist_ok=True)
        api_log.write_text("")
        rows: dict[str, list[Row]] = {"api": [], "raw": []}
        with server:
            api = start_process(
                [sys.executable, "-m", "api"],
                api_log,
                cwd=REPO,
                env=api_env(server.address, tmp / "data", api_port),
            )
            try:
                wait_for_port(api_port, 60, api, "API", api_log)
                url = f"http://127.0.0.1:{api_port}"

                def run_row(kind: str, tag: str) -> Row:
                    if kind == "api":
                        return measured(
                            lambda: run_api(tool, url, args.requests, args.concurrency, tag, tmp),
                            server.proc.pid,
                            api.pid,
                        )
                    return measured(
                        lambda: run_raw(server.address, args.requests, args.concurrency, tag),
                        server.proc.pid,
                    )

                # Warm-up, not measured: connections, caches, the first imports.
                run_api(tool, url, args.concurrency * 2, args.concurrency, "warm-api", tmp)
                run_raw(server.address, args.concurrency * 2, args.concurrency, "warm-raw")
                for n in range(args.rounds):
                    order = ("api", "raw") if n % 2 == 0 else ("raw", "api")
                    for kind in order:
                        rows[kind].append(run_row(kind, f"{kind}-{n}"))
            finally:
                stop_process(api)
    return 0 if report(rows, args, time.perf_counter() - t0) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        nargs="?",
        choices=["raw"],
        help="run only the raw row's client (used by the bench itself)",
    )
    parser.add_argument("--requests", type=int, default=1000, help="per row and round")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--address", help="raw: the Temporal frontend")
    parser.add_argument("--tag", default="raw", help="raw: makes the post ids distinct")
    return parser.parse_args(argv)


if __name__ == "__main__":
    parsed = parse_args()
    if parsed.mode == "raw":
        result = asyncio.run(
            raw_starts(parsed.address, parsed.requests, parsed.concurrency, parsed.tag)
        )
        print(json.dumps(result), flush=True)
        exit_process(0)
    exit_process(main(parsed))
