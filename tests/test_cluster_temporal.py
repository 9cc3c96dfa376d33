"""The Temporal server's own faults on ``make cluster``'s topology (temporal-server on
PostgreSQL, one process per service): the history service killed mid-video, the frontend
restarted during a burst of publishes, PostgreSQL restarted under Temporal. Each is held by a
condition the test observes, never by a guessed delay; no job is lost, no effect repeated.

The cluster and its hosts: tests/test_cluster.py and tests/support/cluster_fixtures.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.blog import post_published_event_id
from devstack.proc import port_in_use
from tests.support import media_clips
from tests.support.cluster import (
    assert_notified_once,
    post_body,
    publish_until_accepted,
    running_attempt,
    scratch_files,
    upload,
    wait_video,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


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


# The module's first test: its fixture builds temporal-server on a first run (go install).
@pytest.mark.timeout(2400)
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
