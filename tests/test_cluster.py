"""Spool as separate hosts that share nothing but the network (``make cluster``'s topology).

PostgreSQL, Elasticsearch 8, S3Proxy and the Temporal server a deployment runs
(``temporal-server`` on that PostgreSQL, its frontend, history, matching and worker services as
separate processes) are real servers; the API, the pipeline worker, two media workers and the
captions worker are separate processes, each in a mount namespace that sees only its own home.
The media hosts read ffmpeg input at its native pace (tests.support.paced_worker), so a test
can catch a transcode in the middle on any machine. Faults of the Temporal server itself (a
service killed, PostgreSQL restarted under it) are held by conditions the tests observe,
never by guessed delays.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.blog import post_published_event_id
from devstack.cluster import CLUSTER_API_KEY, Cluster, isolation_prefix
from devstack.proc import free_port, port_in_use
from spool.config import Settings
from spool.storage.keys import video_prefix
from tests.support import media_clips
from tests.support.cluster import (
    AUTH,
    assert_notified_once,
    host_of,
    post_body,
    publish_until_accepted,
    running_attempt,
    scratch_files,
    stack_storage,
    upload,
    wait_video,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster():
    from tests.support.services import service_missing

    if shutil.which("unshare") is None:
        service_missing("unshare (util-linux) is needed to isolate the cluster's hosts")
    root = Path(tempfile.mkdtemp(prefix="spool-cluster-"))
    root.chmod(0o755)  # Elasticsearch's unprivileged user must reach its home inside
    c = Cluster(
        root / "cluster",
        api_port=free_port(),
        temporal_port=free_port(),
        worker_module={"media": "tests.support.paced_worker"},
    )
    try:
        c.start()
    except Exception as exc:  # noqa: BLE001
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
        service_missing(f"the cluster did not start: {exc}")
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def cluster_client(cluster) -> Client:
    from spool.temporal import connect

    return await connect(
        Settings(temporal_address=cluster.temporal.address, temporal_tls=False), wait_seconds=30
    )


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


# --- the Temporal server's own faults --------------------------------------------------------


async def history_unreachable(client: Client, job_id: str) -> bool:
    """The frontend cannot reach the job's history any more."""
    try:
        await client.get_workflow_handle(job_id).describe()
    except RPCError:
        return True
    return False


def burst_posts(tag: str, n: int, authors: int = 4) -> list[dict]:
    run = uuid.uuid4().hex[:6]
    return [
        post_body(f"{tag}-{run}-p{i}", f"{tag}-{run}-a{i % authors}", [f"{tag}-{run}-f{i}"])
        for i in range(n)
    ]


async def assert_posts_once(cluster, http: httpx.AsyncClient, client: Client, jobs, posts) -> None:
    """Every post acknowledged, its job ready, counted once, its follower told once."""
    assert set(jobs) == {p["post_id"] for p in posts}
    for job_id in jobs.values():
        assert (await client.get_workflow_handle(job_id).result())["state"] == "ready"
    expected = Counter(p["author_id"] for p in posts)
    for author, count in expected.items():
        assert (await http.get(f"/v1/authors/{author}")).json()["post_count"] == count
    assert_notified_once(cluster, [post_published_event_id(p["post_id"]) for p in posts])


async def publish_all(http, posts, jobs: dict, refusals: list, limit: int = 8) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(body: dict) -> None:
        async with gate:
            jobs[body["post_id"]] = await publish_until_accepted(http, body, refusals)

    await asyncio.gather(*(one(p) for p in posts))


@pytest.mark.timeout(900)
async def test_history_killed_mid_video_then_restarted_ends_ready_each_effect_once(
    cluster, cluster_client, clips
):
    clip = media_clips.make_paced_clip(clips / "paced-history.mp4")
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=120) as http:
        job = await upload(http, clip, captions="false")
        await running_attempt(cluster_client, job["job_id"], "encode-00000")
        cluster.temporal.kill_service("history")  # mid-encode: the media host goes on
        await eventually(
            lambda: history_unreachable(cluster_client, job["job_id"]),
            "the frontend to lose the history service",
            within=300,
            every=0.5,
        )
        cluster.temporal.start_service("history")
        v = await wait_video(http, job["video_id"])
        # The record says ready before the owner's notice goes: the job's end follows it.
        await cluster_client.get_workflow_handle(job["job_id"]).result()
    assert v["state"] == "ready", v
    assert [r["name"] for r in v["renditions"]] == ["180p"]
    assert_notified_once(cluster, [f"video-done:{job['video_id']}"])
    assert scratch_files(cluster) == {name: [] for name in scratch_files(cluster)}


@pytest.mark.timeout(900)
async def test_frontend_restarted_during_a_burst_of_publishes_loses_none(cluster, cluster_client):
    posts = burst_posts("frontend", 40)
    jobs: dict[str, str] = {}
    refusals: list[str] = []
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=120) as http:
        burst = asyncio.ensure_future(publish_all(http, posts, jobs, refusals))
        try:
            await eventually(lambda: len(jobs) >= 10, "10 publishes acknowledged", 300)
            cluster.temporal.kill_service("frontend")
            await eventually(lambda: refusals, "a publish refused, frontend down", 300, 0.2)
            cluster.temporal.start_service("frontend")
        finally:
            await burst
        print(f"\n[fault] frontend killed: {len(refusals)} refusals, all then acknowledged")
        await assert_posts_once(cluster, http, cluster_client, jobs, posts)


@pytest.mark.timeout(900)
async def test_postgres_restarted_under_temporal_loses_nothing(cluster, cluster_client, clips):
    clip = media_clips.make_paced_clip(clips / "paced-postgres.mp4")
    posts = burst_posts("pg-restart", 30)
    jobs: dict[str, str] = {}
    refusals: list[str] = []
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=120) as http:
        job = await upload(http, clip, captions="false")
        await publish_all(http, posts[:10], jobs, refusals)
        await running_attempt(cluster_client, job["job_id"], "encode-00000")
        burst = asyncio.ensure_future(publish_all(http, posts[10:], jobs, refusals))
        # Fast shutdown and start on the same data, from this (long-lived) thread; the burst
        # is in flight at the API while Temporal and the hosts lose their database.
        cluster.postgres.restart()
        await burst
        assert port_in_use(cluster.postgres.port)
        v = await wait_video(http, job["video_id"])
        await cluster_client.get_workflow_handle(job["job_id"]).result()  # its notice sent
        await assert_posts_once(cluster, http, cluster_client, jobs, posts)
    assert v["state"] == "ready", v
    assert [r["name"] for r in v["renditions"]] == ["180p"]
    assert_notified_once(cluster, [f"video-done:{job['video_id']}"])
