"""Scale-out on make cluster's topology: one media host against two, in one run.

    .venv/bin/python bench/cluster.py [--seconds 60]

Starts the cluster (S3Proxy, PostgreSQL, Elasticsearch, Temporal dev server, API, pipeline
worker) with two media hosts pinned to one core each (taskset: media-1 on CPU 0, media-2 on
CPU 1, one encode at a time each). The same 1080p clip (bench/video.py's) is uploaded through
the API twice, without captions: first with media-2 stopped, then with both media hosts.
Prints both job times (upload accepted -> ready) and the ratio.
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

from bench.video import cpu_model, make_clip  # noqa: E402
from devstack.cluster import CLUSTER_API_KEY, DEFAULT_HOSTS, Cluster, Host  # noqa: E402
from devstack.proc import free_port, stop_process  # noqa: E402

AUTH = {"Authorization": f"Bearer {CLUSTER_API_KEY}"}


def pinned_hosts() -> dict[str, Host]:
    hosts = {name: Host(name, env_file, queue) for name, (env_file, queue)
             in DEFAULT_HOSTS.items() if queue != "captions"}
    hosts["media-1"].cpus = "0"
    hosts["media-2"].cpus = "1"
    return hosts


async def one_job(http: httpx.AsyncClient, clip: Path) -> float:
    t0 = time.perf_counter()
    with clip.open("rb") as fh:
        r = await http.post("/v1/videos", headers=AUTH, data={"captions": "false"},
                            files={"file": ("clip.mp4", fh, "video/mp4")})
    r.raise_for_status()
    status_url = r.json()["status_url"]
    while True:
        v = (await http.get(status_url)).json()
        if v["state"] != "processing":
            break
        await asyncio.sleep(0.5)
    took = time.perf_counter() - t0
    assert v["state"] == "ready" and len(v["renditions"]) == 4, v
    return took


async def main(args) -> None:
    clip = make_clip(args.seconds)
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; clip {clip.name}")
    with tempfile.TemporaryDirectory(prefix="spool-bench-cluster-") as tmpdir:
        root = Path(tmpdir)
        root.chmod(0o755)
        cluster = Cluster(root / "cluster", api_port=free_port(), temporal_port=free_port(),
                          ui_port=None, hosts=pinned_hosts(),
                          extra_env={"SPOOL_MEDIA_CONCURRENCY": "1",
                                     "SPOOL_LOG_LEVEL": "WARNING"})
        with cluster:
            async with httpx.AsyncClient(base_url=cluster.api_url, timeout=600) as http:
                stop_process(cluster.hosts["media-2"].proc)
                cluster.hosts["media-2"].proc = None
                one = await one_job(http, clip)
                print(f"one media host (CPU 0):            {one:7.1f} s", flush=True)
                cluster.restart_host("media-2")
                two = await one_job(http, clip)
                print(f"two media hosts (CPU 0 and CPU 1): {two:7.1f} s", flush=True)
    print(f"speed-up with a second media host: {one / two:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
