"""Spool as separate hosts that share nothing but the network (``make cluster``'s topology).

PostgreSQL, Elasticsearch 8, S3Proxy and the Temporal server a deployment runs
(``temporal-server`` on that PostgreSQL, its frontend, history, matching and worker services as
separate processes) are real servers; the API, the pipeline worker, two media workers and the
captions worker are separate processes, each in a mount namespace that sees only its own home.
The media hosts read ffmpeg input at its native pace (tests.support.paced_worker), so a test
can catch a transcode in the middle on any machine.

Faults of the Temporal server itself (a service killed, PostgreSQL restarted under it) are
tests/test_cluster_temporal.py, on a cluster of its own (tests/support/cluster_fixtures.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devstack.cluster import CLUSTER_API_KEY, isolation_prefix
from spool.storage.keys import video_prefix
from tests.support import media_clips
from tests.support.cluster import (
    AUTH,
    host_of,
    running_attempt,
    scratch_files,
    stack_storage,
    upload,
    wait_video,
)

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(2400)  # its fixture builds temporal-server on a first run (go install)
def test_a_host_sees_only_its_own_home(cluster):
    secret = cluster.scratch("api") / "only-the-api-host-may-read-this"
    secret.write_text("x")
    try:
        seen = subprocess.run(
            [
                *isolation_prefix(cluster.root, "media-1", cluster._stage / "media-1"),
                "sh",
                "-c",
                f'ls "{cluster.root}" "{cluster.root}/hosts"; cat "{secret}"',
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        secret.unlink()
    listing = seen.stdout.split()
    assert "media-1" in listing and "api" not in listing and "services" not in listing
    assert seen.returncode != 0 and "No such file" in seen.stderr


async def test_video_and_post_complete_across_hosts(cluster, cluster_client, clips):
    clip = media_clips.make_clip(clips / "c1080.mp4", width=1920, height=1080, seconds=2)
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=120) as http:
        job = await upload(http, clip)
        post = {
            "post_id": "cluster-post",
            "author_id": "ada",
            "title": "Across hosts",
            "body": "Indexed by one host, counted once.",
            "followers": ["grace"],
        }
        r = await http.post("/v1/posts", headers=AUTH, json=post)
        assert r.status_code == 202, r.text
        post_job = r.json()["job_id"]
        v = await wait_video(http, job["video_id"])
        assert v["state"] == "ready", v
        assert [r["name"] for r in v["renditions"]] == ["1080p", "720p", "480p", "360p"]
        assert v["captions"]["state"] == "available" and v["poster_url"]
        # The API host serves what the media hosts made, from object storage, with ranges.
        storage = stack_storage(cluster)
        key = f"{video_prefix(job['video_id'])}360p.mp4"
        stored = await asyncio.to_thread(storage.read_bytes, key)
        part = await http.get(v["renditions"][-1]["url"], headers={"Range": "bytes=10-4009"})
        assert part.status_code == 206 and part.content == stored[10:4010]
        full = await http.get(v["renditions"][-1]["url"])
        assert hashlib.sha256(full.content).digest() == hashlib.sha256(stored).digest()
        vtt = await http.get(v["captions"]["vtt_url"])
        assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
        await cluster_client.get_workflow_handle(post_job).result()
        hits = (await http.get("/v1/posts/search", params={"q": "hosts"})).json()
        assert [hit["post_id"] for hit in hits["results"]] == ["cluster-post"]
        author = (await http.get("/v1/authors/ada")).json()
        assert author["post_count"] == 1
    # Every file went through object storage; no host kept anything in its scratch space.
    assert scratch_files(cluster) == {name: [] for name in scratch_files(cluster)}
    for name in cluster.hosts:
        data = cluster.home(name) / "data"
        assert not (data / "objects").exists(), f"{name} wrote objects to its own disk"


async def test_killed_media_host_rendition_finishes_on_the_other(cluster, cluster_client, clips):
    clip = media_clips.make_paced_clip(clips / "paced.mp4")
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=120) as http:
        job = await upload(http, clip, captions="false")
        first = await running_attempt(cluster_client, job["job_id"], "encode-00000")
        victim = host_of(cluster, first.last_worker_identity)
        assert victim.startswith("media-")
        cluster.kill_host(victim)  # mid-encode: its 20 s paced transcode cannot be done
        try:
            second = await running_attempt(cluster_client, job["job_id"], "encode-00000", attempt=2)
            assert host_of(cluster, second.last_worker_identity) not in (victim,)
            v = await wait_video(http, job["video_id"])
        finally:
            cluster.restart_host(victim)
    assert v["state"] == "ready", v
    assert [r["name"] for r in v["renditions"]] == ["180p"]
    # The killed host's half-made files were swept when it started again.
    assert scratch_files(cluster) == {name: [] for name in scratch_files(cluster)}


async def test_storage_stopped_mid_job_then_back(cluster, cluster_client, clips):
    clip = media_clips.make_paced_clip(clips / "paced-s3.mp4", seconds=6)
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=120) as http:
        job = await upload(http, clip, captions="false")
        await running_attempt(cluster_client, job["job_id"], "encode-00000")
        cluster.s3.stop()
        try:
            # The outage itself, not a synchronisation: the store is gone for 20 s while the
            # transcode finishes and tries to upload its result.
            await asyncio.sleep(20)
        finally:
            cluster.s3.start()
        v = await wait_video(http, job["video_id"])
    assert v["state"] == "ready", v
    assert [r["name"] for r in v["renditions"]] == ["180p"]
    keys = await asyncio.to_thread(
        stack_storage(cluster).list_prefix, video_prefix(job["video_id"])
    )
    assert f"{video_prefix(job['video_id'])}180p.mp4" in keys
    assert scratch_files(cluster) == {name: [] for name in scratch_files(cluster)}


def test_client_env_file_points_at_the_cluster(cluster):
    values = dict(
        line.split("=", 1)
        for line in (cluster.root / "client.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert values["SPOOL_API_URL"] == cluster.api_url
    assert values["SPOOL_API_KEY"] == CLUSTER_API_KEY
    assert values["SPOOL_TEMPORAL_ADDRESS"] == cluster.temporal.address
    assert oct((cluster.root / "client.env").stat().st_mode & 0o777) == "0o600"
    assert os.environ.get("SPOOL_API_KEY") != CLUSTER_API_KEY  # nothing leaked into ours


def test_starter_with_the_client_env_file_runs_a_job_on_the_cluster(cluster, clips):
    """starter.py on 'another machine': only client.env, its own empty data dir, both ways
    in: through the API, and straight to object storage + Temporal with credentials."""
    clip = media_clips.make_clip(clips / "cli.mp4", width=320, height=240, seconds=1, speech=None)
    env = {**os.environ, **cluster.client_env(), "SPOOL_DATA_DIR": str(clips / "cli-data")}
    repo = Path(__file__).resolve().parent.parent
    for how in (["--api", cluster.api_url], []):
        done = subprocess.run(
            [
                sys.executable,
                "starter.py",
                "video",
                str(clip),
                "--no-captions",
                "--wait",
                "--json",
                *how,
            ],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (how, done.stderr)
        status = json.loads(done.stdout.strip().splitlines()[-1])
        assert status["state"] == "ready", status
    assert not (clips / "cli-data" / "objects").exists()
