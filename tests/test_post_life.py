"""A post over its life through its own workflow (post-{id}): publish, edit, unpublish,
republish, delete, schedule, against the dev server, SQLite and the embedded index.

Each test checks the invariants of docs/posts.md: the author's count is the number of posts
published now, the index holds exactly the published posts at their newest version, followers
are notified once, at the first publish."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from spool.db import get_engine
from spool.db.blog import author_post_count, get_post
from spool.models import Post, PostOpKind, PostState, post_entity_id
from spool.search import open_index
from spool.service.post_ops import PostRefused, apply_op, new_op
from spool.service.posts import PostService
from tests.support.posts import make_post, notified, service_for
from tests.support.waiting import eventually
from tests.support.workers import spool_worker

pytestmark = pytest.mark.orchestration


async def settled(svc: PostService, post_id: str, state: str | None) -> None:
    """The post's record at ``state`` (None: deleted or never) and every effect written."""

    async def check():
        row = get_post(svc.engine, post_id)
        recorded = None if row is None or row["state"] == "deleted" else row["state"]
        if recorded != state:
            return False
        doc = svc.index.get(post_id)
        return (doc is not None) == (state == "published")

    await eventually(check, f"post {post_id} {state}")


async def test_publish_unpublish_republish_delete_keep_count_index_and_notice_exact(
    client, settings
):
    svc = service_for(client, settings)
    post = make_post()
    async with spool_worker(client, settings):
        accepted = await svc.publish(post)
        assert accepted.job_id == f"post-{post.post_id}-v1" and accepted.state == "published"
        await settled(svc, post.post_id, "published")
        assert author_post_count(svc.engine, post.author_id) == 1
        assert svc.index.search("durable", 10) == [post.post_id]

        down = await svc.operate(PostOpKind.UNPUBLISH, post.post_id)
        assert down.state == "unpublished" and not down.absorbed
        await settled(svc, post.post_id, "unpublished")
        assert author_post_count(svc.engine, post.author_id) == 0
        assert svc.index.search("durable", 10) == []
        again = await svc.operate(PostOpKind.UNPUBLISH, post.post_id)
        assert again.absorbed and again.state == "unpublished"

        edited = Post(**{**post.__dict__, "version": 2, "title": "Durable, edited"})
        back = await svc.publish(edited)
        assert back.state == "published"
        await settled(svc, post.post_id, "published")
        assert author_post_count(svc.engine, post.author_id) == 1
        assert svc.index.get(post.post_id).title == "Durable, edited"
        assert (await svc.view(post.post_id)).state == "published"

        gone = await svc.operate(PostOpKind.DELETE, post.post_id)
        assert gone.state == "deleted"
        await settled(svc, post.post_id, None)
        assert await svc.view(post.post_id) is None
        assert author_post_count(svc.engine, post.author_id) == 0
        with pytest.raises(PostRefused) as refused:
            await svc.operate(PostOpKind.UNPUBLISH, post.post_id)
        assert refused.value.not_found

        # Publishing the same id after a delete starts it afresh, at any version.
        await svc.publish(post)
        await settled(svc, post.post_id, "published")
        assert author_post_count(svc.engine, post.author_id) == 1
    # Followers were told once, at the first publish only.
    assert notified(settings, post.post_id) == sorted(post.followers or [])


async def test_an_older_write_arriving_late_changes_nothing(client, settings):
    """The fence: after an unpublish, a late retry of the publish's writes (an older fence)
    neither counts the post nor brings it back into the index."""
    from activities.blog import BlogActivities
    from spool.models import entity_fence

    svc = service_for(client, settings)
    post = make_post()
    async with spool_worker(client, settings):
        await svc.publish(post)
        await settled(svc, post.post_id, "published")
        await svc.operate(PostOpKind.UNPUBLISH, post.post_id)
        await settled(svc, post.post_id, "unpublished")
    acts = BlogActivities(settings)
    late = Post(**{**post.__dict__, "fence": entity_fence(1)})
    assert not acts.index_post(late).applied
    assert not acts.record_post_for_author(late).counted
    # And a publish started on its own (fenced by its version) is below every such fence.
    assert not acts.index_post(Post(**{**post.__dict__, "version": 9})).applied
    assert author_post_count(svc.engine, post.author_id) == 0
    assert svc.index.get(post.post_id) is None
    assert get_post(svc.engine, post.post_id)["state"] == "unpublished"


async def test_bad_operations_are_refused_and_change_nothing(client, settings):
    svc = service_for(client, settings)
    post = make_post()
    with pytest.raises(PostRefused) as unknown:
        await svc.operate(PostOpKind.UNPUBLISH, f"nobody-{uuid.uuid4().hex[:6]}")
    assert unknown.value.not_found
    async with spool_worker(client, settings):
        await svc.publish(Post(**{**post.__dict__, "version": 2}))
        await settled(svc, post.post_id, "published")
        with pytest.raises(PostRefused) as older:
            await svc.publish(post)  # version 1 after version 2
        assert older.value.conflict and "older" in older.value.message
        with pytest.raises(PostRefused) as not_scheduled:
            await svc.operate(PostOpKind.CANCEL_SCHEDULE, post.post_id)
        assert not_scheduled.value.conflict and "too late" in not_scheduled.value.message
        state = await client.get_workflow_handle(post_entity_id(post.post_id)).query("state")
    assert state["generation"] == 1  # the refusals made no generation
    assert author_post_count(svc.engine, post.author_id) == 1


async def test_a_schedule_publishes_once_at_its_time_and_a_late_cancel_is_too_late(
    client, settings
):
    svc = service_for(client, settings)
    post = make_post()
    async with spool_worker(client, settings):
        accepted = await svc.publish(post, (datetime.now(UTC) + timedelta(days=2)).isoformat())
        assert accepted.state == "scheduled" and accepted.publish_at
        await settled(svc, post.post_id, "scheduled")
        assert author_post_count(svc.engine, post.author_id) == 0
        view = await svc.view(post.post_id)
        assert view.state == "scheduled" and view.publish_at == accepted.publish_at
        # A few seconds ahead: moved to, then fired by the workflow's timer.
        soon = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        moved = await svc.operate(PostOpKind.SCHEDULE, post.post_id, soon)
        assert moved.state == "scheduled" and not moved.absorbed
        await settled(svc, post.post_id, "published")
        fired = get_post(svc.engine, post.post_id)
        assert datetime.fromisoformat(fired["published_at"]) == datetime.fromisoformat(soon)
        assert author_post_count(svc.engine, post.author_id) == 1
        with pytest.raises(PostRefused) as late:
            await svc.operate(PostOpKind.CANCEL_SCHEDULE, post.post_id)
        assert late.value.conflict and "too late" in late.value.message
        with pytest.raises(PostRefused) as late_move:
            later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            await svc.operate(PostOpKind.SCHEDULE, post.post_id, later)
        assert late_move.value.conflict and "too late" in late_move.value.message


async def test_cancelled_schedule_never_publishes(client, settings):
    svc = service_for(client, settings)
    post = make_post()
    async with spool_worker(client, settings):
        await svc.publish(post, (datetime.now(UTC) + timedelta(hours=1)).isoformat())
        await settled(svc, post.post_id, "scheduled")
        cancelled = await svc.operate(PostOpKind.CANCEL_SCHEDULE, post.post_id)
        assert cancelled.state == "unpublished"
        await settled(svc, post.post_id, "unpublished")
        state = await client.get_workflow_handle(post_entity_id(post.post_id)).query("state")
    assert state["state"] == PostState.UNPUBLISHED and state["publish_at"] is None
    assert author_post_count(svc.engine, post.author_id) == 0
    assert notified(settings, post.post_id) == []


async def test_an_operation_without_a_worker_is_acknowledged_at_once_and_applied_later(
    client, settings
):
    svc = service_for(client, settings)
    post = make_post()
    op = new_op(PostOpKind.PUBLISH, post.post_id, post=post)
    applied = await apply_op(client, settings, svc.engine, op, ack_seconds=1.0)
    assert applied.result is None and applied.job_id == f"post-{post.post_id}-v1"
    # The same request again (a client's retry) is the same operation.
    await apply_op(client, settings, svc.engine, op, ack_seconds=1.0)
    async with spool_worker(client, settings):
        await settled(svc, post.post_id, "published")
        state = await client.get_workflow_handle(post_entity_id(post.post_id)).query("state")
    assert state["generation"] == 1
    assert author_post_count(get_engine(settings), post.author_id) == 1
    assert open_index(settings).get(post.post_id).version == 1


def temporal_cli(settings, *args: str) -> subprocess.CompletedProcess:
    from devstack.temporal import find_temporal_binary

    return subprocess.run(
        [find_temporal_binary(), "workflow", *args, "--address", settings.temporal_address],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def cli_apply(settings, post_id: str, op: dict):
    """``temporal workflow update execute`` of one operation on the post's workflow."""
    return await asyncio.to_thread(
        temporal_cli,
        settings,
        "update",
        "execute",
        "--workflow-id",
        f"post-{post_id}",
        "--name",
        "apply",
        "--input",
        json.dumps(op),
    )


async def test_temporal_cli_publishes_and_unpublishes_without_spool_code(client, settings):
    """docs/posts.md's `temporal workflow execute-update-with-start` and `update execute`
    commands, run for real."""
    svc = service_for(client, settings)
    post = make_post()
    publish = {
        "kind": "publish",
        "post_id": post.post_id,
        "request_id": "cli-publish-1",
        "post": {
            "post_id": post.post_id,
            "author_id": post.author_id,
            "title": post.title,
            "body": post.body,
            "followers": post.followers,
        },
    }
    unpublish = {"kind": "unpublish", "post_id": post.post_id, "request_id": "cli-unpublish-1"}
    async with spool_worker(client, settings):
        published = await asyncio.to_thread(
            temporal_cli,
            settings,
            "execute-update-with-start",
            "--type",
            "PostWorkflow",
            "--task-queue",
            settings.queue_pipeline,
            "--workflow-id",
            f"post-{post.post_id}",
            "--id-conflict-policy",
            "UseExisting",
            "--input",
            json.dumps({"post_id": post.post_id}),
            "--update-name",
            "apply",
            "--update-input",
            json.dumps(publish),
        )
        assert published.returncode == 0, published.stderr
        assert "state:published" in published.stdout, published.stdout
        await settled(svc, post.post_id, "published")
        refused = await cli_apply(settings, post.post_id, {**unpublish, "kind": "reschedule"})
        # Refused before it entered history: the post is as it was.
        assert refused.returncode != 0 and "reschedule" in refused.stderr + refused.stdout
        done = await cli_apply(settings, post.post_id, unpublish)
        assert done.returncode == 0, done.stderr
        await settled(svc, post.post_id, "unpublished")
    assert author_post_count(svc.engine, post.author_id) == 0


async def test_the_api_answers_each_operation_at_once_and_refuses_bad_ones(client, settings):
    from tests.support.api import AUTH, api_client, api_settings, assert_error

    s = api_settings(settings)
    post = make_post()
    body = {k: v for k, v in post.__dict__.items() if k not in ("fence", "published_at")}
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    async with api_client(s, client) as http, spool_worker(client, s):
        too_far = (datetime.now(UTC) + timedelta(days=400)).isoformat()
        far = await http.post("/v1/posts", headers=AUTH, json={**body, "publish_at": too_far})
        assert_error(far, 422, "publish_at")
        assert_error(await http.get(f"/v1/posts/{post.post_id}"), 404)
        assert_error(await http.post("/v1/posts/nobody-here/unpublish", headers=AUTH), 404)

        r = await http.post("/v1/posts", headers=AUTH, json={**body, "publish_at": later})
        assert r.status_code == 202 and r.json()["state"] == "scheduled", r.text
        other = {**body, "post_id": f"{post.post_id}-b"}
        assert (await http.post("/v1/posts", headers=AUTH, json=other)).status_code == 202
        await eventually(
            lambda: get_post(get_engine(s), other["post_id"]) is not None, "the other post"
        )
        got = (await http.get(f"/v1/posts/{post.post_id}")).json()
        assert got["state"] == "scheduled" and got["publish_at"] == r.json()["publish_at"]

        page = (
            await http.get("/v1/posts", params={"author_id": post.author_id, "limit": 1})
        ).json()
        assert [p["post_id"] for p in page["posts"]] == [post.post_id] and page["next_cursor"]
        rest = (
            await http.get(
                "/v1/posts",
                params={"author_id": post.author_id, "limit": 1, "cursor": page["next_cursor"]},
            )
        ).json()
        assert [p["post_id"] for p in rest["posts"]] == [other["post_id"]]
        assert rest["next_cursor"] is None
        assert_error(await http.get("/v1/posts", params={"cursor": "zz"}), 422, "cursor")

        past = {"publish_at": "2020-01-01T00:00:00Z"}
        schedule = f"/v1/posts/{post.post_id}/schedule"
        assert_error(await http.put(schedule, headers=AUTH, json=past), 422, "publish_at")
        cancelled = await http.delete(schedule, headers=AUTH)
        assert cancelled.status_code == 202 and cancelled.json()["state"] == "unpublished"
        again = await http.delete(schedule, headers=AUTH)
        assert again.status_code == 202 and again.json()["absorbed"]
        assert_error(await http.put(schedule, headers=AUTH, json={"publish_at": later}), 409)

        gone = await http.delete(f"/v1/posts/{post.post_id}", headers=AUTH)
        assert gone.status_code == 202 and gone.json()["job_id"] == f"post-{post.post_id}"
        await eventually(
            lambda: get_post(get_engine(s), post.post_id)["state"] == "deleted", "the delete"
        )
        assert_error(await http.get(f"/v1/posts/{post.post_id}"), 404)
        assert_error(await http.post(f"/v1/posts/{post.post_id}/unpublish", headers=AUTH), 404)
        author = (await http.get(f"/v1/authors/{post.author_id}")).json()
    assert author["post_count"] == 1  # the other post, published now


async def test_concurrent_versions_of_one_post_end_at_the_newest(client, settings):
    svc = service_for(client, settings)
    post = make_post()

    async def publish(version: int):
        try:
            return await svc.publish(Post(**{**post.__dict__, "version": version}))
        except PostRefused as refused:
            assert refused.conflict, refused
            return None

    async with spool_worker(client, settings):
        await asyncio.gather(*(publish(v) for v in (1, 2, 1, 2, 3, 3)))
        await eventually(
            lambda: (svc.index.get(post.post_id) or post).version == 3, "version 3 indexed"
        )
        await settled(svc, post.post_id, "published")
        await asyncio.gather(
            svc.operate(PostOpKind.UNPUBLISH, post.post_id),
            svc.operate(PostOpKind.UNPUBLISH, post.post_id),
            publish(3),
        )
    assert author_post_count(svc.engine, post.author_id) in (0, 1)
    assert notified(settings, post.post_id) == sorted(post.followers or [])
