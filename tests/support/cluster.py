"""Helpers of the cluster tests (tests/test_cluster.py, tests/test_cluster_temporal.py): the
cluster's storage and scratch space, uploads and posts through its API, and the audit of a
job's effects."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa
from temporalio.client import Client

from devstack.cluster import CLUSTER_API_KEY
from spool import scratch
from spool.config import Settings
from spool.db import get_engine
from spool.db.notifications import delivery_key, notifications
from spool.storage import open_storage
from spool.storage.transfers import SOURCE_CACHE_PREFIX
from tests.support.history import heartbeating_activities
from tests.support.waiting import eventually

AUTH = {"Authorization": f"Bearer {CLUSTER_API_KEY}"}


def stack_storage(cluster):
    """The cluster's object store, as a client with credentials sees it."""
    env = cluster.topology_env()
    return open_storage(
        Settings(
            storage_url=env["SPOOL_STORAGE_URL"],
            s3_endpoint_url=env["SPOOL_S3_ENDPOINT_URL"],
            s3_region=env["SPOOL_S3_REGION"],
            s3_access_key_id=env["SPOOL_S3_ACCESS_KEY_ID"],
            s3_secret_access_key=env["SPOOL_S3_SECRET_ACCESS_KEY"],
        )
    )


def scratch_files(cluster) -> dict[str, list[str]]:
    """What each running host has in its scratch space, beyond its live process's own
    (locked) scratch root and the whole uploads its cache keeps there on purpose (no step's
    working files, no half download)."""

    def kept(p: Path, tmp: Path) -> bool:
        depth = len(p.relative_to(tmp).parts)
        if depth == 1:
            return p.name.startswith(scratch.PREFIX) and p.is_dir()
        in_cache = p.relative_to(tmp).parts[1].startswith(SOURCE_CACHE_PREFIX)
        return in_cache and (
            depth == 2 or (depth == 3 and p.is_file() and not p.name.endswith(".part"))
        )

    def leftovers(tmp: Path) -> list[str]:
        return sorted(
            str(p) for p in tmp.rglob("*") if p.name != scratch.LOCK_NAME and not kept(p, tmp)
        )

    return {
        name: leftovers(cluster.scratch(name))
        for name in cluster.hosts
        if cluster.hosts[name].proc is not None
    }


async def upload(http: httpx.AsyncClient, clip: Path, **fields: str) -> dict:
    r = await http.post(
        "/v1/videos",
        headers=AUTH,
        data=fields,
        files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")},
    )
    assert r.status_code == 202, r.text
    return r.json()


async def wait_video(http: httpx.AsyncClient, video_id: str, within: float = 600) -> dict:
    deadline = time.monotonic() + within
    while True:
        r = await http.get(f"/v1/videos/{video_id}")
        # Anything but 200 is a service still coming back after a fault: ask again.
        v = r.json() if r.status_code == 200 else {"state": "processing", "answer": r.text}
        if v["state"] not in ("processing",):
            return v
        assert time.monotonic() < deadline, f"video {video_id} still processing: {v}"
        await asyncio.sleep(0.5)


async def running_attempt(
    client: Client, job_id: str, activity_id: str, *, attempt: int = 1, within: float = 300
):
    """The pending activity once it runs ``attempt`` and has heartbeated some progress."""
    handle = client.get_workflow_handle(job_id)

    async def running():
        for pending, percent in await heartbeating_activities(handle):
            if pending.activity_id == activity_id and pending.attempt == attempt and percent > 0:
                return pending
        return None

    return await eventually(
        running, f"{activity_id} attempt {attempt} to run", within=within, every=0.2
    )


def host_of(cluster, identity: str) -> str:
    pid = int(identity.split("@", 1)[0])
    return next(
        name
        for name, host in cluster.hosts.items()
        if host.proc is not None and host.proc.pid == pid
    )


def cluster_engine(cluster) -> sa.Engine:
    return get_engine(Settings(database_url=cluster.postgres.url))


def outbox_keys(cluster) -> Counter:
    """The log notifier's deliveries on the pipeline host, by key."""
    path = cluster.home("pipeline") / "data" / "notifications.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["key"] for line in lines)


def assert_notified_once(cluster, event_ids: list[str]) -> None:
    """Each event has its ledger rows, every one delivered, and the notifier sent each
    (event, recipient) exactly once."""
    with cluster_engine(cluster).connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(notifications).where(notifications.c.event_id.in_(event_ids))
            ).mappings()
        ]
    assert {r["event_id"] for r in rows} == set(event_ids), rows
    assert all(r["delivered_at"] is not None for r in rows), rows
    sent = outbox_keys(cluster)
    for r in rows:
        assert sent[delivery_key(r["event_id"], r["recipient"])] == 1, (r, sent)


def post_body(post_id: str, author_id: str, followers: list[str]) -> dict:
    return {
        "post_id": post_id,
        "author_id": author_id,
        "title": f"Post {post_id}",
        "body": "Published through a Temporal restart, counted once.",
        "followers": followers,
    }


async def publish_until_accepted(
    http: httpx.AsyncClient, body: dict, refusals: list[str], within: float = 300
) -> str:
    """POST the post until the API acknowledges it (202): every other answer must be a
    clear refusal (503, nothing started), noted in ``refusals``; the repeat is safe (the
    workflow id absorbs a start that did land)."""
    deadline = time.monotonic() + within
    while True:
        r = await http.post("/v1/posts", headers=AUTH, json=body)
        if r.status_code == 202:
            return r.json()["job_id"]
        assert r.status_code == 503, f"{body['post_id']}: neither accepted nor refused: {r.text}"
        refusals.append(body["post_id"])
        assert time.monotonic() < deadline, f"publish {body['post_id']} never accepted"
        await asyncio.sleep(0.5)
