"""A burst of post publishes through the API with concurrent video uploads, in one run.

    .venv/bin/python bench/load.py [--posts 1000] [--rate 0] [--workers 100] [--uploads 20]

Starts the embedded stack (`make up`'s: Temporal dev server on SQLite, one worker.py for
every queue, the API) on free ports and a temporary data dir, then at once:
- vegeta (a compiled load generator, its own process; `go install`ed into .cache/bin) sends
  ``--posts`` distinct POST /v1/posts from ``--workers`` connections (``--rate 0`` = as fast
  as they go), spread over 10 authors with 3 followers each;
- this script streams ``--uploads`` different generated clips to POST /v1/videos, all at once.
Then it waits for every job and checks: 0 HTTP errors, every video `ready`, every post's
workflow completed, each author's count exactly its posts, one notification per follower per
post. Prints vegeta's latency/throughput, the job drain time and the peak RSS (VmHWM) of the
API and the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import text  # noqa: E402

from bench.video import cpu_model  # noqa: E402
from devstack.proc import free_port  # noqa: E402
from devstack.stack import EmbeddedStack, local_api_key  # noqa: E402
from spool.config import Settings  # noqa: E402
from spool.db import get_engine  # noqa: E402
from spool.temporal import connect, exit_process  # noqa: E402

VEGETA = "github.com/tsenart/vegeta/v12@v12.12.0"
BIN = REPO / ".cache" / "bin"
AUTHORS = [f"load-author-{i}" for i in range(10)]


def vegeta() -> Path:
    """vegeta, built once with `go install` into .cache/bin (Go's module cache is shared)."""
    binary = BIN / "vegeta"
    if not binary.exists():
        BIN.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "install", VEGETA],
            check=True,
            timeout=900,
            env={**os.environ, "GOBIN": str(BIN), "GOTOOLCHAIN": "local"},
        )
    return binary


def targets(api: str, key: str, count: int, run: str) -> str:
    """vegeta's JSON targets: one distinct post per line."""
    header = {"Authorization": [f"Bearer {key}"], "Content-Type": ["application/json"]}
    lines = []
    for n in range(count):
        post = {
            "post_id": f"load-{run}-{n}",
            "author_id": AUTHORS[n % len(AUTHORS)],
            "title": f"Load post {n}",
            "body": f"Body of post {n} in run {run}.",
            "followers": [f"reader-{n % 7}", f"reader-{n % 5 + 10}", "everyone"],
        }
        lines.append(
            json.dumps(
                {
                    "method": "POST",
                    "url": f"{api}/v1/posts",
                    "header": header,
                    "body": base64.b64encode(json.dumps(post).encode()).decode(),
                }
            )
        )
    return "\n".join(lines) + "\n"


def make_clips(folder: Path, count: int) -> list[Path]:
    """Different small clips: one lavfi pattern each (test patterns, colours, noise)."""
    patterns = [
        "testsrc",
        "testsrc2",
        "smptebars",
        "rgbtestsrc",
        "mandelbrot",
        "life",
        "cellauto",
        "yuvtestsrc",
        "pal75bars",
        "smptehdbars",
    ]
    clips = []
    for i in range(count):
        clip = folder / f"clip-{i}.mp4"
        source = f"{patterns[i % len(patterns)]}=size=320x240:rate=15"
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                source,
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={200 + 40 * i}",
                "-t",
                f"{1.5 + (i % 4) * 0.5}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
                str(clip),
            ],
            check=True,
            timeout=120,
        )
        clips.append(clip)
    return clips


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def upload_all(api: str, key: str, clips: list[Path]) -> list[str]:
    async with httpx.AsyncClient(
        base_url=api, timeout=600, headers={"Authorization": f"Bearer {key}"}
    ) as http:

        async def one(clip: Path) -> str:
            with clip.open("rb") as fh:
                r = await http.post(
                    "/v1/videos",
                    data={"captions": "false"},
                    files={"file": (clip.name, fh, "video/mp4")},
                )
            assert r.status_code == 202, r.text
            return r.json()["video_id"]

        return list(await asyncio.gather(*(one(c) for c in clips)))


async def wait_videos(api: str, video_ids: list[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        while len(states) < len(video_ids):
            for vid in video_ids:
                if vid not in states:
                    v = (await http.get(f"/v1/videos/{vid}")).json()
                    if v["state"] != "processing":
                        states[vid] = v["state"]
            await asyncio.sleep(0.5)
    return states


async def main(args: argparse.Namespace) -> int:
    tool = vegeta()
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; load generator {VEGETA}")
    with tempfile.TemporaryDirectory(prefix="spool-bench-load-") as tmpdir:
        tmp = Path(tmpdir)
        clips = make_clips(tmp, args.uploads)
        settings = Settings(data_dir=tmp / "data", api_port=free_port())
        stack = EmbeddedStack(settings, temporal_port=free_port(), ui_port=free_port())
        run = f"{int(time.time())}"
        (tmp / "targets.json").write_text(
            targets(stack.api_url, local_api_key(settings), args.posts, run)
        )
        with stack:
            client = await connect(
                Settings(temporal_address=stack.temporal_address), wait_seconds=30
            )
            t0 = time.perf_counter()
            attack = await asyncio.create_subprocess_exec(
                str(tool),
                "attack",
                "-format=json",
                "-lazy",
                f"-targets={tmp / 'targets.json'}",
                f"-rate={args.rate}",
                f"-workers={args.workers}",
                f"-max-workers={args.workers}",
                "-timeout=120s",
                f"-output={tmp / 'results.bin'}",
            )
            video_ids = await upload_all(stack.api_url, local_api_key(settings), clips)
            assert await attack.wait() == 0, "vegeta attack failed"
            sent = time.perf_counter() - t0
            report = subprocess.run(
                [str(tool), "report", "-type=json", str(tmp / "results.bin")],
                capture_output=True,
                text=True,
                check=True,
            )
            metrics = json.loads(report.stdout)
            states = await wait_videos(stack.api_url, video_ids)
            while True:  # polling the server: there is nothing local to wait on
                if not (await client.count_workflows("ExecutionStatus='Running'")).count:
                    break
                await asyncio.sleep(0.5)
            drained = time.perf_counter() - t0
            failed = [w async for w in client.list_workflows("ExecutionStatus!='Completed'")]
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
                counts = {
                    a: (await http.get(f"/v1/authors/{a}")).json()["post_count"] for a in AUTHORS
                }
            with get_engine(settings).connect() as conn:
                ledger = conn.execute(
                    text(
                        "SELECT count(*), count(DISTINCT event_id || '/' || recipient) "
                        "FROM notifications WHERE event_id LIKE :p"
                    ),
                    {"p": f"post-published:load-{run}-%"},
                ).one()
            rss = {name: peak_rss_mb(proc.pid) for name, proc in stack.procs.items()}
    lat = metrics["latencies"]
    errors = {code: n for code, n in metrics["status_codes"].items() if code != "202"}
    if "no targets to attack" in (metrics.get("errors") or []):
        # -lazy ends the attack with one empty hit when the targets run out: not a request.
        errors["0"] -= 1
        errors = {code: n for code, n in errors.items() if n}
        metrics["requests"] -= 1
    print(
        f"posts: {metrics['requests']} sent by vegeta ({args.workers} workers) in "
        f"{metrics['duration'] / 1e9:.1f} s = {metrics['throughput']:.1f} acks/s; "
        f"ack p50 {lat['50th'] / 1e6:.0f} ms, p99 {lat['99th'] / 1e6:.0f} ms, "
        f"max {lat['max'] / 1e6:.0f} ms; "
        f"non-202: {errors or 'none'}"
    )
    print(
        f"uploads: {len(video_ids)} concurrent, all sent within {sent:.1f} s; "
        f"states: { {s: list(states.values()).count(s) for s in set(states.values())} }"
    )
    print(
        f"every job done {drained:.1f} s after the burst began; workflows not completed: "
        f"{len(failed)}"
    )
    expected = args.posts // len(AUTHORS)
    print(
        f"author counts: {sorted(set(counts.values()))} (expected {expected} each); "
        f"notification rows {ledger[0]}, distinct (event, recipient) {ledger[1]}, "
        f"expected {args.posts * 3}"
    )
    print("peak RSS: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))
    ok = (
        not errors
        and set(states.values()) == {"ready"}
        and not failed
        and set(counts.values()) == {expected}
        and ledger[0] == ledger[1] == args.posts * 3
    )
    print("RESULT:", "all complete, 0 errors, counts exact" if ok else "PROBLEMS (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=0, help="requests/s; 0 = unthrottled")
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--uploads", type=int, default=20)
    exit_process(asyncio.run(main(parser.parse_args())))
