"""Faults of the Temporal side under posts, against the real servers: the dev server
SIGKILLed in the middle of a burst of 200 publishes, and the whole embedded stack SIGKILLed
before a scheduled post's time. No accepted publish is lost or repeated; a scheduled post is
published once, at its time.

The means (gates, not delays; figures printed, never asserted): tests/support/faults.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from devstack.stack import EmbeddedStack, local_api_key
from devstack.temporal import DevServer
from spool.config import Settings
from spool.db import get_engine
from spool.models import Post, blog_workflow_id
from spool.service.jobs import start_blog
from tests.support import waiting
from tests.support.fault_audit import (
    assert_blog_effects,
    assert_indexed_at_versions,
    ledger_rows,
    make_posts,
)
from tests.support.faults import (
    LONG,
    all_final,
    eventually,
    figure,
    kill_stack,
    on,
    retried_steps,
    stack_client,
    start_first_stack,
)

pytestmark = pytest.mark.e2e


async def start_until_accepted(client: Client, settings: Settings, post: Post) -> str:
    """Start a publish, retrying while Temporal is unreachable: a start is the client's one
    durable write, repeated safely (the workflow id absorbs a start that did land)."""
    deadline = time.monotonic() + LONG
    while True:
        try:
            return (await start_blog(client, settings, post)).job_id
        except RPCError:
            assert time.monotonic() < deadline, f"publish {post.post_id} never accepted"
            await asyncio.sleep(0.2)


def restarted_dev_server(old: DevServer) -> DevServer:
    """SIGKILL the dev server and start it again on the same SQLite file and port.

    Run it on the keeper thread (see keeper)."""
    os.killpg(old.proc.pid, signal.SIGKILL)
    old.proc.wait(30)
    new = DevServer(
        port=old.port, ui_port=old.ui_port, db_filename=old.db_filename, log_path=old.log_path
    )
    try:
        return new.start()
    except BaseException:
        new.stop()  # a server that never listened must not outlive the test
        raise


async def test_dev_server_killed_during_a_burst_of_200_publishes(stack_settings, keeper):
    stack = start_first_stack(stack_settings, with_api=False)
    posts = make_posts("burst", authors_n=10, per_author=20)
    accepted: list[str] = []
    limit = asyncio.Semaphore(16)

    async def publish(post: Post) -> None:
        async with limit:
            accepted.append(await start_until_accepted(client, stack_settings, post))

    try:
        client = await stack_client(stack)
        burst = asyncio.gather(*(publish(p) for p in posts))
        try:
            await eventually(lambda: len(accepted) >= 100, "100 publishes accepted")
            at_kill = len(accepted)
            killed = time.monotonic()
            stack.server = await on(keeper, restarted_dev_server, stack.server)
            figure("dev server: SIGKILL -> listening again", time.monotonic() - killed)
        finally:
            await burst
        print(f"\n[fault] dev server killed with {at_kill} of 200 publishes accepted")
        results = await all_final(client, accepted)
        figure("dev server: kill -> all 200 publishes final", time.monotonic() - killed)
        assert stack.procs["worker"].poll() is None, "the worker died with the dev server"
        print(f"[fault] jobs that retried each step: {dict(await retried_steps(client, accepted))}")
    finally:
        stack.stop()
    assert sorted(accepted) == sorted(blog_workflow_id(p.post_id, 1) for p in posts)
    assert_blog_effects(stack_settings, posts, results)
    assert_indexed_at_versions(stack_settings, posts)


async def test_a_scheduled_post_survives_the_whole_stack_killed_and_publishes_once(
    stack_settings,
):
    """The schedule is a durable timer: the whole stack SIGKILLed before the post's time and
    started again on the same data, the post is published once, at its time, counted and
    announced once."""
    from datetime import UTC, datetime, timedelta

    from spool.db.blog import author_post_count, get_post

    stacks = [start_first_stack(stack_settings)]
    auth = {"Authorization": f"Bearer {local_api_key(stack_settings)}"}
    post_id, author = f"monday-{uuid.uuid4().hex[:8]}", f"ada-{uuid.uuid4().hex[:8]}"
    # Far enough ahead that the kill, right after the answer, lands before it.
    publish_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    post = {"post_id": post_id, "author_id": author, "title": "Monday", "body": "At nine."}
    try:
        async with httpx.AsyncClient(base_url=stacks[0].api_url, timeout=60) as http:
            r = await http.post(
                "/v1/posts",
                headers=auth,
                json={**post, "followers": ["ana"], "publish_at": publish_at.isoformat()},
            )
            assert r.status_code == 202 and r.json()["state"] == "scheduled", r.text
        kill_stack(stacks[0])
        assert datetime.now(UTC) < publish_at, "the kill came after the post's time"
        engine = get_engine(stack_settings)
        assert author_post_count(engine, author) == 0
        stacks.append(
            EmbeddedStack(
                stack_settings,
                temporal_port=stacks[0].temporal_port,
                ui_port=stacks[0].ui_port,
            ).start()
        )
        async with httpx.AsyncClient(base_url=stacks[-1].api_url, timeout=60) as http:

            async def published() -> dict | None:
                view = (await http.get(f"/v1/posts/{post_id}")).json()
                return view if view.get("state") == "published" else None

            await waiting.eventually(published, "the scheduled post published", within=300)
            seen = datetime.now(UTC)
        # How late after its time the post was seen published (polled every 0.1 s).
        figure("scheduled post: seen published after its time", (seen - publish_at).total_seconds())
    finally:
        for stack in reversed(stacks):
            stack.stop()
    stored = get_post(engine, post_id)
    assert stored is not None
    assert datetime.fromisoformat(stored["published_at"]) == publish_at
    assert author_post_count(engine, author) == 1
    rows = ledger_rows(engine, [f"post-published:{post_id}"])
    assert [r["recipient"] for r in rows] == ["ana"] and rows[0]["delivered_at"] is not None
