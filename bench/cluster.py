"""Scale-out on make cluster's topology: one media host against two, in one run.

    .venv/bin/python bench/cluster.py [--seconds 60]

Starts the cluster (S3Proxy, PostgreSQL, Elasticsearch, Temporal dev server, API, pipeline
worker) with two media hosts pinned to one core each (taskset: media-1 on CPU 0, media-2 on
CPU 1, one encode at a time each). The same 1080p clip (bench/video.py's) is uploaded through
the API twice, without captions: first with media-2 stopped, then with both media hosts.
Prints both job times (upload sent -> job ended, awaited on Temporal), where each job's
time went (from its history: before the media tasks, the chunks and audio track, after
them), the CPU seconds every service and host spent during each job, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench.history import activity_runs  # noqa: E402
from bench.procstat import tree_cpu_seconds  # noqa: E402
from bench.video import cpu_model, make_clip  # noqa: E402
from devstack.cluster import CLUSTER_API_KEY, DEFAULT_HOSTS, Cluster, Host  # noqa: E402
from devstack.proc import free_port, stop_process  # noqa: E402

AUTH = {"Authorization": f"Bearer {CLUSTER_API_KEY}"}


def pinned_hosts() -> dict[str, Host]:
    hosts = {
        name: Host(name, env_file, queue)
        for name, (env_file, queue) in DEFAULT_HOSTS.items()
        if queue != "captions"
    }
    hosts["media-1"].cpus = "0"
    hosts["media-2"].cpus = "1"
    return hosts


async def one_job(http: httpx.AsyncClient, temporal: Client, clip: Path) -> tuple[float, str]:
    """(upload sent -> job ended, the job's workflow id). The end is awaited on Temporal (one
    long poll), not by polling the status: ten status queries a second would load the very
    cores the encodes run on."""
    t0 = time.perf_counter()
    with clip.open("rb") as fh:
        r = await http.post(
            "/v1/videos",
            headers=AUTH,
            data={"captions": "false"},
            files={"file": ("clip.mp4", fh, "video/mp4")},
        )
    r.raise_for_status()
    accepted = r.json()
    await temporal.get_workflow_handle(accepted["job_id"]).result()
    took = time.perf_counter() - t0
    v = (await http.get(accepted["status_url"])).json()
    assert v["state"] == "ready" and len(v["renditions"]) == 4, v
    return took, accepted["job_id"]


async def phases(client: Client, job_id: str) -> str:
    """Where the job's time went, from its history: before the first media task started,
    the media tasks (chunks + audio track: their span and the seconds they ran in all), how
    they fell on the hosts (the worker that ran each, its task-s and when its last one
    ended), and after the last one ended, step by step."""
    runs, first, last = await activity_runs(client.get_workflow_handle(job_id))
    runs = [r for r in runs if r.ended is not None]
    media_runs = [r for r in runs if r.activity_id.startswith(("encode-", "audio"))]
    begin = min(r.started for r in media_runs)
    end = max(r.ended for r in media_runs)
    hosts = []
    for worker in sorted({r.worker for r in media_runs}):
        mine = sorted((r for r in media_runs if r.worker == worker), key=lambda r: r.started)
        tasks = " ".join(
            f"{r.activity_id.removeprefix('encode-000')}:{r.seconds:.1f}" for r in mine
        )
        hosts.append(
            f"{len(mine)} tasks {sum(r.seconds for r in mine):.1f} task-s "
            f"ending at {mine[-1].ended - begin:.1f} s [{tasks}]"
        )
    after = ", ".join(
        f"{r.activity_id} {r.started - end:+.1f}..{r.ended - end:+.1f}"
        for r in sorted(runs, key=lambda r: r.started)
        if r.ended > end and r not in media_runs
    )
    return (
        f"before media {begin - first:.1f} s, {len(media_runs)} media tasks over "
        f"{end - begin:.1f} s ({sum(r.seconds for r in media_runs):.1f} task-s; "
        f"{'; '.join(hosts)}), after {last - end:.1f} s: {after})"
    )


def process_trees(cluster: Cluster) -> dict[str, int]:
    services = {
        "s3proxy": cluster.s3,
        "postgres": cluster.postgres,
        "elasticsearch": cluster.es,
    }
    roots = {name: svc.proc.pid for name, svc in services.items() if svc.proc is not None}
    if cluster.temporal is not None:  # one process per Temporal service
        roots.update(
            {
                f"temporal-{name}": proc.pid
                for name, proc in cluster.temporal.procs.items()
                if proc is not None
            }
        )
    roots.update(
        {
            name: host.proc.pid
            for name, host in cluster.hosts.items()
            if host.proc is not None and host.proc.poll() is None
        }
    )
    return roots


async def measured_job(
    http: httpx.AsyncClient, temporal: Client, clip: Path, cluster: Cluster
) -> tuple[float, str]:
    """one_job, and a line of where the machine's CPU went meanwhile (process trees: a
    host's ffmpeg children count for the host)."""
    roots = process_trees(cluster)
    before = tree_cpu_seconds(roots)
    took, job = await one_job(http, temporal, clip)
    after = tree_cpu_seconds(roots)
    spent = {name: after[name] - before[name] for name in roots}
    line = ", ".join(
        f"{name} {cpu:.1f}" for name, cpu in sorted(spent.items(), key=lambda kv: -kv[1])
    )
    return took, (
        f"{await phases(temporal, job)}\n    CPU s during the job: {line} "
        f"(all {sum(spent.values()):.1f})"
    )


async def main(args) -> None:
    clip = make_clip(args.seconds)
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; clip {clip.name}")
    with tempfile.TemporaryDirectory(prefix="spool-bench-cluster-") as tmpdir:
        root = Path(tmpdir)
        root.chmod(0o755)
        cluster = Cluster(
            root / "cluster",
            api_port=free_port(),
            temporal_port=free_port(),
            hosts=pinned_hosts(),
            extra_env={"SPOOL_MEDIA_CONCURRENCY": "1", "SPOOL_LOG_LEVEL": "WARNING"},
        )
        with cluster:
            temporal = await Client.connect(cluster.temporal.address)
            async with httpx.AsyncClient(base_url=cluster.api_url, timeout=600) as http:
                stop_process(cluster.hosts["media-2"].proc)
                cluster.hosts["media-2"].proc = None
                one, where = await measured_job(http, temporal, clip, cluster)
                print(f"one media host (CPU 0):            {one:7.1f} s ({where}", flush=True)
                cluster.restart_host("media-2")
                two, where = await measured_job(http, temporal, clip, cluster)
                print(f"two media hosts (CPU 0 and CPU 1): {two:7.1f} s ({where}", flush=True)
    print(f"speed-up with a second media host: {one / two:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
