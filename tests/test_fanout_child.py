"""A large audience is walked by a process of its own (spool/fanout_child.py), so the worker's
workflow tasks and queries never wait behind its CPU: it notifies every follower once, passes
its heartbeats on, and a cancel stops it."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from pydantic import SecretStr

import activities.blog as blog_activities
from spool.config import Settings
from spool.db import get_engine
from spool.db.followers import import_follows
from spool.fanout import Cursor, Event, FanOutCancelled, FanOutHooks
from spool.fanout_child import _follow, fan_out_in_child, settings_payload
from spool.models import Post
from spool.service.jobs import start_blog
from tests.support.workers import blog_worker

pytestmark = pytest.mark.orchestration


def followed_author(settings: Settings, count: int) -> tuple[str, list[str]]:
    author = f"ada-{uuid.uuid4().hex[:8]}"
    people = [f"f{i:05d}" for i in range(count)]
    import_follows(get_engine(settings), ((author, f) for f in people))
    return author, people


def outbox_recipients(settings: Settings) -> list[str]:
    lines = settings.resolved_notify_outbox.read_text().splitlines()
    return sorted(json.loads(line)["recipient"] for line in lines)


@pytest.mark.unit
def test_the_child_gets_every_setting_secrets_included(tmp_path):
    s = Settings(
        data_dir=tmp_path,
        api_keys=[SecretStr("k-1")],
        webhook_secret=SecretStr("shh"),
        database_url="postgresql+psycopg://spool:pw@db/spool",
    )
    again = Settings(**settings_payload(s))
    assert again.api_key_values == ["k-1"]
    assert again.webhook_secret_value == "shh"
    assert again.database_url == s.database_url
    assert again.data_dir == s.data_dir


async def test_a_large_audience_is_announced_from_a_child_process_once_each(
    client, settings, monkeypatch
):
    s = settings.model_copy(update={"fanout_page_size": 50, "fanout_child_above": 100})
    author, people = followed_author(s, 230)
    children = []

    def counted(*args, **kwargs):
        children.append(args[2])  # the author
        return fan_out_in_child(*args, **kwargs)

    monkeypatch.setattr(blog_activities, "fan_out_in_child", counted)
    post = Post(post_id=f"p-{uuid.uuid4().hex[:8]}", author_id=author, title="All", body="Hi")
    async with blog_worker(client, s):
        job = await start_blog(client, s, post)
        status = await client.get_workflow_handle(job.job_id).result()
    assert status["state"] == "ready"
    assert children == [author]
    assert outbox_recipients(s) == people


async def test_a_small_audience_stays_in_the_worker(client, settings, monkeypatch):
    s = settings.model_copy(update={"fanout_child_above": 100})
    author, people = followed_author(s, 100)
    monkeypatch.setattr(blog_activities, "fan_out_in_child", None)  # would fail if called
    post = Post(post_id=f"p-{uuid.uuid4().hex[:8]}", author_id=author, title="All", body="Hi")
    async with blog_worker(client, s):
        job = await start_blog(client, s, post)
        status = await client.get_workflow_handle(job.job_id).result()
    assert status["state"] == "ready"
    assert outbox_recipients(s) == people


def test_a_cancel_stops_the_child_and_its_beats_were_passed_on(settings):
    """Cancelled as soon as the child's first heartbeat arrives: whatever its speed, the
    activity stops reading it there and kills it."""
    s = settings.model_copy(update={"fanout_page_size": 10})
    author, _ = followed_author(s, 500)
    beats: list[dict] = []
    hooks = FanOutHooks(beat=beats.append, cancelled=lambda: len(beats) >= 2)
    event = Event(event_id=f"post-published:{author}", event_type="post.published", payload={})
    with pytest.raises(FanOutCancelled):
        fan_out_in_child(s, event, author, hooks, Cursor(total=500))
    assert beats[0]["walked"] == 0 and len(beats) == 2


def test_every_heartbeat_read_is_passed_on_before_the_child_writes_again():
    """Two heartbeats come in one read and the child writes nothing more: both are passed on
    at once (a line left in a reader's buffer would wait for the child's next write)."""
    read_end, write_end = os.pipe()
    os.write(write_end, b'{"beat": {"walked": 5}}\n{"beat": {"walked": 10}}\n')
    beats: list[dict] = []
    looks: list[int] = []

    def cancelled() -> bool:
        looks.append(1)
        return len(beats) >= 2 or len(looks) > 3  # a few idle polls: the second never came

    event = Event(event_id="post-published:p", event_type="post.published", payload={})
    try:
        with os.fdopen(read_end, "rb") as out, pytest.raises(FanOutCancelled):
            _follow(out, FanOutHooks(beat=beats.append, cancelled=cancelled), event)
    finally:
        os.close(write_end)
    assert [beat["walked"] for beat in beats] == [5, 10]
