"""Each request on a post is applied once, in the order it was accepted, whichever copies of
it reach the post's workflow (docs/posts.md, "Each request is applied once").

The service sends a request as an Update and, when no worker acknowledges it in time, again
as the signal; the server keeps the Update and may deliver it later, in the same workflow
task as its signal, after requests sent since."""

from __future__ import annotations

import asyncio

import pytest

from spool.db.blog import author_post_count, get_post
from spool.db.followers import follow
from spool.models import OpResult, Post, PostOpKind
from spool.service.post_ops import apply_op, new_op
from tests.support.post_ops import entity_signal, entity_start, update_admitted
from tests.support.posts import make_post, notified, service_for
from tests.support.waiting import eventually
from tests.support.workers import running_worker, spool_worker
from workflows.blog import BlogPublishWorkflow
from workflows.posts import PostWorkflow

pytestmark = pytest.mark.orchestration


async def test_the_late_update_of_a_request_also_signalled_changes_nothing(client, settings):
    svc = service_for(client, settings)
    post = make_post()
    publish = new_op(PostOpKind.PUBLISH, post.post_id, post=post)
    # No worker yet: the publish and a later unpublish wait as signals in the history, and
    # the publish's Update (the client gave up on it) on the server.
    await entity_signal(client, settings, publish)
    await entity_signal(client, settings, new_op(PostOpKind.UNPUBLISH, post.post_id))
    late = asyncio.create_task(
        client.execute_update_with_start_workflow(
            PostWorkflow.apply,
            publish,
            start_workflow_operation=entity_start(settings, post.post_id),
            id=publish.request_id,
            result_type=OpResult,
        )
    )
    await eventually(
        lambda: update_admitted(client, post.post_id, publish.request_id), "the Update held"
    )
    async with spool_worker(client, settings):
        # One task carries all three: the late copy answers what the publish did.
        answer = await late
        assert answer.state == "published" and answer.generation == 1
        state = await client.get_workflow_handle(f"post-{post.post_id}").query(PostWorkflow.state)
        assert (state.state, state.generation) == ("unpublished", 2)
        await eventually(
            lambda: (get_post(svc.engine, post.post_id) or {}).get("state") == "unpublished",
            "the unpublish recorded",
        )
    assert author_post_count(svc.engine, post.author_id) == 0
    assert svc.index.get(post.post_id) is None
    # Superseded before its effects were written, the publish may have announced nothing.
    assert notified(settings, post.post_id) in ([], sorted(post.followers or []))


async def test_only_the_first_publish_tells_the_follower_graph(client, settings):
    """The announcement is the fan-out over the author's followers, at the first publish
    only: a follower who joined since is not told of an edit or a republish."""
    svc = service_for(client, settings)
    post = make_post(followers=None)
    follow(svc.engine, post.author_id, "early")
    async with spool_worker(client, settings):
        first = await svc.publish(post)
        await eventually(lambda: job_ended(client, first.job_id), "the first publish")
        follow(svc.engine, post.author_id, "late")
        await svc.operate(PostOpKind.UNPUBLISH, post.post_id)
        edited = Post(**{**post.__dict__, "version": 2, "title": "Durable, edited"})
        second = await svc.publish(edited)
        steps = await eventually(lambda: job_ended(client, second.job_id), "the edit")
    assert steps["notify_followers"] == "done"  # with no one to tell
    assert notified(settings, post.post_id) == ["early"]
    assert author_post_count(svc.engine, post.author_id) == 1


async def job_ended(client, job_id: str) -> dict[str, str] | None:
    """The job's steps by state once it is ready, else None."""
    status = await client.get_workflow_handle(job_id).query("status")
    if status.get("state") != "ready":
        return None
    return {step["name"]: step["state"] for step in status["steps"]}


async def test_an_update_no_worker_answers_in_time_is_handed_over_and_applied_once(
    client, settings
):
    """A worker polls the queue but cannot run the post's workflow: the Update waits on the
    server, the client stops waiting, the answer is 202 without a state, and once a worker
    can run it the publish is applied once (the Update and its signal are one request)."""
    svc = service_for(client, settings)
    post = make_post()
    op = new_op(PostOpKind.PUBLISH, post.post_id, post=post)
    async with running_worker(
        client, settings.queue_pipeline, workflows=[BlogPublishWorkflow], activities=[]
    ):
        applied = await apply_op(client, settings, svc.engine, op, ack_seconds=1.0)
    assert applied.result is None and applied.job_id == f"post-{post.post_id}-v1"
    async with spool_worker(client, settings):
        await eventually(
            lambda: (get_post(svc.engine, post.post_id) or {}).get("state") == "published",
            "the publish recorded",
        )
        handle = client.get_workflow_handle(f"post-{post.post_id}")
        state = await handle.query(PostWorkflow.state)
        assert (state.state, state.generation) == ("published", 1)
    assert author_post_count(svc.engine, post.author_id) == 1
