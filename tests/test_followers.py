"""The follower graph through the API and the command line, and a publish announced to it.

A post without a `followers` list is announced to the author's stored followers, a page at
a time; a cancel of its job stops the walk; an explicit list is capped, and above the cap the
error says where a large audience goes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest
import sqlalchemy as sa
from temporalio import activity
from temporalio.client import WorkflowFailureError

from activities.blog import post_published_event_id
from spool.db import get_engine
from spool.db.followers import import_follows
from spool.db.notifications import notifications
from spool.follower_import import main as import_main
from spool.models import Post
from spool.notify import LogNotifier
from spool.service.jobs import start_blog
from tests.support.api import AUTH, api_client, api_settings, assert_error
from tests.support.workers import blog_worker

pytestmark = pytest.mark.orchestration


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def delivered(settings, post_id: str) -> list[str]:
    with get_engine(settings).connect() as conn:
        return sorted(
            conn.execute(
                sa.select(notifications.c.recipient).where(
                    notifications.c.event_id == post_published_event_id(post_id),
                    notifications.c.delivered_at.is_not(None),
                )
            ).scalars()
        )


async def test_the_graph_is_written_and_read_a_page_at_a_time(client, settings):
    author = new_id("ada")
    async with api_client(api_settings(settings), client) as http:
        base = f"/v1/authors/{author}/followers"
        assert_error(await http.get(base), 404)  # an author nobody follows, with no post
        first = await http.put(f"{base}/grace", headers=AUTH)
        assert first.status_code == 201, first.text
        assert first.json() == {"author_id": author, "follower_id": "grace", "created": True}
        again = await http.put(f"{base}/grace", headers=AUTH)
        assert (again.status_code, again.json()["created"]) == (200, False)
        for follower in ("alan", "barbara", "edsger", "linus"):
            assert (await http.put(f"{base}/{follower}", headers=AUTH)).status_code == 201
        pages, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await http.get(base, params=params)).json()
            pages.append(page["followers"])
            cursor = page.get("next_cursor")
            if cursor is None:
                break
        assert pages == [["alan", "barbara"], ["edsger", "grace"], ["linus"]]
        gone = await http.delete(f"{base}/edsger", headers=AUTH)
        assert gone.status_code == 200 and gone.json()["removed"] is True
        assert_error(await http.delete(f"{base}/edsger", headers=AUTH), 404)
        listed = (await http.get(base, params={"limit": 10})).json()
        assert listed["followers"] == ["alan", "barbara", "grace", "linus"]
        assert "next_cursor" not in listed or listed["next_cursor"] is None


async def test_graph_writes_need_the_key_and_bad_ids_are_named(client, settings):
    author = new_id("ada")
    async with api_client(api_settings(settings), client) as http:
        base = f"/v1/authors/{author}/followers"
        assert_error(await http.put(f"{base}/grace"), 401)
        assert_error(await http.delete(f"{base}/grace"), 401)
        assert_error(await http.put(f"{base}/{'x' * 201}", headers=AUTH), 422, "follower_id")
        assert_error(await http.put(f"{base}/a%20b", headers=AUTH), 422, "follower_id")
        assert_error(await http.get(base, params={"limit": 0}), 422, "limit")
        assert_error(await http.get(base, params={"cursor": "a b"}), 422, "cursor")


async def test_a_post_over_the_followers_cap_is_refused_pointing_at_the_graph(client, settings):
    s = api_settings(settings, max_post_followers=3)
    post = {"post_id": new_id("p"), "author_id": "ada", "title": "T", "body": "B"}
    async with api_client(s, client) as http:
        err = assert_error(
            await http.post("/v1/posts", headers=AUTH, json={**post, "followers": list("abcd")}),
            422,
            "followers",
        )
        assert "at most 3" in err["message"] and "/v1/authors/" in err["message"]
        schema = (await http.get("/openapi.json")).json()["components"]["schemas"]["PostIn"]
        followers = schema["properties"]["followers"]
        assert [o.get("maxItems") for o in followers["anyOf"] if o.get("type") == "array"] == [3]


async def test_a_post_without_a_list_is_announced_to_every_stored_follower(client, settings):
    s = settings.model_copy(update={"fanout_page_size": 5})
    author = new_id("ada")
    people = [f"f{i:03d}" for i in range(23)]
    import_follows(get_engine(s), ((author, f) for f in people))
    post = Post(post_id=new_id("p"), author_id=author, title="To all", body="Hello")
    async with blog_worker(client, s):
        job = await start_blog(client, s, post)
        status = await client.get_workflow_handle(job.job_id).result()
    assert status["state"] == "ready"
    assert delivered(s, post.post_id) == people
    sent = [json.loads(line) for line in s.resolved_notify_outbox.read_text().splitlines()]
    assert sorted(r["recipient"] for r in sent) == people  # each once


class HeldAfter(LogNotifier):
    """Delivers ``n`` notifications, then holds its next batch until the activity is
    cancelled, heartbeating meanwhile as a slow receiver's delivery would let it: the
    cancel comes back as a heartbeat's answer."""

    def __init__(self, outbox, n: int) -> None:
        super().__init__(outbox)
        self.n, self.sent = n, 0
        self.held = threading.Event()
        self.stopped = threading.Event()

    def deliver_batch(self, batch) -> None:
        if self.sent >= self.n:
            self.held.set()
            try:
                while not activity.is_cancelled():
                    activity.heartbeat()
                    self.stopped.wait(0.2)  # the poll's pace, not a wait for time to pass
            finally:
                self.stopped.set()
        super().deliver_batch(batch)
        self.sent += len(batch)


async def test_cancelling_the_job_stops_the_fan_out(client, settings):
    s = settings.model_copy(update={"fanout_page_size": 100})
    author = new_id("ada")
    people = [f"f{i:04d}" for i in range(1_000)]
    import_follows(get_engine(s), ((author, f) for f in people))
    notifier = HeldAfter(s.resolved_notify_outbox, 200)
    post = Post(post_id=new_id("p"), author_id=author, title="To all", body="Hello")
    async with blog_worker(client, s, notifier=notifier):
        job = await start_blog(client, s, post)
        handle = client.get_workflow_handle(job.job_id)
        assert await asyncio.to_thread(notifier.held.wait, 60)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert await asyncio.to_thread(notifier.stopped.wait, 60)
    # The worker has stopped: the activity ended. The walk stopped at the held batch.
    sent = s.resolved_notify_outbox.read_text().splitlines()
    assert 200 <= len(sent) <= 300 < len(people)
    assert len(delivered(s, post.post_id)) == len(sent)


@pytest.mark.unit
def test_the_import_command_streams_json_lines_and_names_a_bad_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPOOL_DATA_DIR", str(tmp_path / "data"))
    lines = tmp_path / "follows.jsonl"
    lines.write_text(
        "\n".join(json.dumps({"author_id": "ada", "follower_id": f"f{i}"}) for i in range(7))
        + "\n\n"
    )
    assert import_main([str(lines)]) == 0
    assert "7 new follows" in capsys.readouterr().out
    assert import_main([str(lines)]) == 0  # a repeat stores nothing twice
    assert "0 new follows" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"author_id": "ada", "follower_id": "ok"}\n{"author_id": "ada"}\n')
    assert import_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 2: follower_id" in err and "Traceback" not in err
    too_long = tmp_path / "long.jsonl"
    too_long.write_text(json.dumps({"author_id": "ada", "follower_id": "x" * 201}) + "\n")
    assert import_main([str(too_long)]) == 2
    assert "at most 200 characters" in capsys.readouterr().err
