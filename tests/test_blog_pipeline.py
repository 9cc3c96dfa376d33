"""The blog pipeline end to end: real Temporal dev server, real Elasticsearch 8, real SQLite.

The central promise: indexing, the author's count and the follower notifications are three
independent steps. An index outage makes index_post retry while the count and the
notifications each happen exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from temporalio.api.enums.v1 import TimeoutType

from activities.blog import post_published_event_id
from spool.db import get_engine
from spool.db.blog import author_post_count
from spool.db.notifications import notifications
from spool.models import InvalidPostError, Post, blog_workflow_id
from spool.notify import LogNotifier
from spool.search import IndexUnavailable, open_index
from spool.search.sqlite import SqliteIndex
from spool.service.jobs import start_blog
from spool.service.jobs import status as job_view
from tests.support import posts
from tests.support.fault_proxy import FaultProxy, is_document_write
from tests.support.history import highest_attempt_by_type
from tests.support.naive_blog import NaiveActivities, NaivePublishWorkflow
from tests.support.paths import REPO
from tests.support.posts import FOLLOWERS
from tests.support.processes import spool_env
from tests.support.waiting import eventually
from tests.support.workers import blog_worker, running_worker

pytestmark = pytest.mark.orchestration


def make_post(**overrides) -> Post:
    """A post with two tags and a publish time, three followers listed."""
    return posts.make_post(
        **{"tags": ["temporal", "durability"], "published_at": "2026-11-26T12:00:00+00:00"}
        | overrides
    )


@pytest.fixture
def es_settings(settings, es_url):
    return settings.model_copy(
        update={
            "elasticsearch_url": es_url,
            "elasticsearch_index": f"posts-{uuid.uuid4().hex[:10]}",
        }
    )


async def publish_and_wait(client, settings, post: Post) -> dict:
    job = await start_blog(client, settings, post)
    result = await client.get_workflow_handle(job.job_id).result()
    return result


def notification_rows(settings, post_id: str) -> list[dict]:
    with get_engine(settings).connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(notifications).where(
                    notifications.c.event_id == post_published_event_id(post_id)
                )
            ).mappings()
        ]


def outbox_records(settings, post_id: str) -> list[dict]:
    path = settings.resolved_notify_outbox
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in lines if r["payload"]["post_id"] == post_id]


def outbox_deliveries(settings, post_id: str) -> list[str]:
    path = settings.resolved_notify_outbox
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["recipient"] for r in lines if r["payload"]["post_id"] == post_id]


def assert_each_follower_notified_once(settings, post_id: str) -> None:
    rows = notification_rows(settings, post_id)
    assert sorted(r["recipient"] for r in rows) == sorted(FOLLOWERS)
    assert all(r["delivered_at"] is not None for r in rows)
    assert sorted(outbox_deliveries(settings, post_id)) == sorted(FOLLOWERS)


@pytest.mark.e2e
async def test_happy_path_indexes_counts_and_notifies_once(client, es_settings):
    post = make_post()
    async with blog_worker(client, es_settings):
        result = await publish_and_wait(client, es_settings, post)
    assert result["state"] == "ready"
    assert {s["name"]: s["state"] for s in result["steps"]} == {
        "index_post": "done",
        "record_post_for_author": "done",
        "notify_followers": "done",
    }

    index = open_index(es_settings)
    index.refresh()
    assert index.search("durable pipelines")[:1] == [post.post_id]
    assert index.get(post.post_id).version == 1
    assert author_post_count(get_engine(es_settings), post.author_id) == 1
    assert_each_follower_notified_once(es_settings, post.post_id)


@pytest.mark.e2e
async def test_index_outage_retries_only_indexing(client, es_settings, es_url):
    """Elasticsearch answers 503 to the first 3 writes; the count and notifications happen once,
    and while it is down the job's status says index_post is retrying and why."""
    failures = 3
    post = make_post()
    with FaultProxy(es_url, fail_first=failures, matches=is_document_write) as proxy:
        proxied = es_settings.model_copy(update={"elasticsearch_url": proxy.url})
        async with blog_worker(client, proxied):
            job = await start_blog(client, proxied, post)
            handle = client.get_workflow_handle(job.job_id)
            seen_retrying = None
            for _ in range(100):
                status = (await job_view(client, job.job_id)).model_dump(mode="json")
                # No steps are listed until a worker has picked the job up.
                step = next((s for s in status["steps"] if s["name"] == "index_post"), None)
                if step is not None and step["state"] == "retrying":
                    seen_retrying = step
                    break
                await asyncio.sleep(0.1)
            result = await handle.result()
        assert proxy.failed == failures
    assert seen_retrying is not None, "status never showed index_post retrying"
    assert seen_retrying["attempt"] >= 2
    assert "unavailable" in seen_retrying["last_error"].lower()

    assert result["state"] == "ready"
    assert await highest_attempt_by_type(handle) == {
        "index_post": failures + 1,
        "record_post_for_author": 1,
        "notify_followers": 1,
    }
    index = open_index(es_settings)
    index.refresh()
    assert index.get(post.post_id).title == post.title
    assert author_post_count(get_engine(es_settings), post.author_id) == 1
    assert_each_follower_notified_once(es_settings, post.post_id)


@pytest.mark.e2e
async def test_naive_single_activity_counts_again_on_every_index_retry(
    client, es_settings, es_url, task_queue
):
    """Why Spool splits the steps: retrying one activity that does all three repeats them."""
    failures = 3
    post = make_post()
    outbox: list = []
    with FaultProxy(es_url, fail_first=failures, matches=is_document_write) as proxy:
        proxied = es_settings.model_copy(update={"elasticsearch_url": proxy.url})
        engine = get_engine(proxied)
        naive = NaiveActivities(engine, open_index(proxied), outbox)
        async with running_worker(
            client, task_queue, workflows=[NaivePublishWorkflow], activities=[naive.naive_publish]
        ):
            await client.execute_workflow(
                NaivePublishWorkflow.run, post, id=f"naive-{post.post_id}", task_queue=task_queue
            )
    # Counted once per attempt: 1 success + 3 failed attempts = 4, not 1.
    assert author_post_count(engine, post.author_id) == failures + 1
    assert len(outbox) == (failures + 1) * len(FOLLOWERS)


async def test_worker_killed_after_commit_does_not_count_twice(client, settings):
    """SIGKILL right after record_post_for_author commits: the retry must not count again."""
    post = make_post()
    crasher = subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_worker"],
        cwd=REPO,
        env=spool_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        job = await start_blog(client, settings, post)
        rc = await asyncio.to_thread(crasher.wait, 60)
        output = crasher.stdout.read()
    finally:
        if crasher.poll() is None:
            crasher.kill()
    assert rc == -signal.SIGKILL, output
    assert "committed counted=True" in output
    engine = get_engine(settings)
    assert author_post_count(engine, post.author_id) == 1

    handle = client.get_workflow_handle(job.job_id)
    async with blog_worker(client, settings):
        result = await handle.result()
    assert result["state"] == "ready"
    steps = {s["name"]: s for s in result["steps"]}
    assert steps["record_post_for_author"]["state"] == "done"
    assert (await highest_attempt_by_type(handle))["record_post_for_author"] >= 2
    assert author_post_count(engine, post.author_id) == 1


async def test_twenty_concurrent_publishes_make_one_job(client, settings):
    post = make_post()
    async with blog_worker(client, settings):
        jobs = await asyncio.gather(*(start_blog(client, settings, post) for _ in range(20)))
        assert {j.job_id for j in jobs} == {blog_workflow_id(post.post_id, 1)}
        result = await client.get_workflow_handle(jobs[0].job_id).result()
        # A publish repeated after the job finished is absorbed too.
        again = await start_blog(client, settings, post)
    assert again.job_id == jobs[0].job_id and again.run_id is None
    assert result["state"] == "ready"
    runs = [w async for w in client.list_workflows(f'WorkflowId="{jobs[0].job_id}"')]
    assert len(runs) == 1
    assert author_post_count(get_engine(settings), post.author_id) == 1
    assert_each_follower_notified_once(settings, post.post_id)


@pytest.mark.e2e
async def test_edit_reindexes_without_counting_or_notifying_again(client, es_settings):
    post = make_post()
    edited = make_post(
        post_id=post.post_id,
        author_id=post.author_id,
        version=2,
        title="Renamed: exactly-once effects",
    )
    async with blog_worker(client, es_settings):
        await publish_and_wait(client, es_settings, post)
        result = await publish_and_wait(client, es_settings, edited)
    assert result["state"] == "ready"
    index = open_index(es_settings)
    index.refresh()
    doc = index.get(post.post_id)
    assert (doc.version, doc.title) == (2, "Renamed: exactly-once effects")
    assert index.search("renamed exactly-once") == [post.post_id]
    assert author_post_count(get_engine(es_settings), post.author_id) == 1
    assert_each_follower_notified_once(es_settings, post.post_id)


@pytest.mark.e2e
async def test_late_older_version_does_not_overwrite_newer(client, es_settings):
    newer = make_post(version=3, title="Version three")
    older = make_post(
        post_id=newer.post_id, author_id=newer.author_id, version=2, title="Version two"
    )
    async with blog_worker(client, es_settings):
        await publish_and_wait(client, es_settings, newer)
        result = await publish_and_wait(client, es_settings, older)
    steps = {s["name"]: s["state"] for s in result["steps"]}
    assert steps["index_post"] == "done"  # a stale version is success, not an error
    index = open_index(es_settings)
    index.refresh()
    assert (index.get(newer.post_id).version, index.get(newer.post_id).title) == (
        3,
        "Version three",
    )
    from spool.db.blog import get_post

    assert get_post(get_engine(es_settings), newer.post_id)["title"] == "Version three"


@pytest.mark.parametrize(
    "field,overrides",
    [
        ("title", {"title": "  "}),
        ("body", {"body": ""}),
        ("version", {"version": 0}),
        ("body", {"body": "x" * 200_001}),
        ("published_at", {"published_at": "yesterday"}),
    ],
)
async def test_invalid_post_is_rejected_before_any_workflow(client, settings, field, overrides):
    post = make_post(**overrides)
    with pytest.raises(InvalidPostError) as err:
        await start_blog(client, settings, post)
    assert err.value.field == field
    runs = [
        w
        async for w in client.list_workflows(
            f'WorkflowId="{blog_workflow_id(post.post_id, post.version)}"'
        )
    ]
    assert runs == []


async def test_search_attributes_let_the_ui_filter_by_kind_and_status(client, settings):
    post = make_post()
    async with blog_worker(client, settings):
        job = await start_blog(client, settings, post)
        await client.get_workflow_handle(job.job_id).result()
    for _ in range(50):  # visibility is eventually consistent
        found = [
            w.id
            async for w in client.list_workflows(
                f'SpoolKind="blog" AND SpoolStatus="ready" AND WorkflowId="{job.job_id}"'
            )
        ]
        if found:
            break
        await asyncio.sleep(0.2)
    assert found == [job.job_id]
    # The filter filters: the same job under another kind or an earlier status is not found.
    for other in (
        'SpoolKind="video" AND SpoolStatus="ready"',
        'SpoolKind="blog" AND SpoolStatus="processing"',
    ):
        assert [
            w.id async for w in client.list_workflows(f'{other} AND WorkflowId="{job.job_id}"')
        ] == []


def temporal_cli_start(settings, task_queue: str, workflow_id: str, payload: dict):
    from devstack.temporal import find_temporal_binary

    return subprocess.run(
        [
            find_temporal_binary(),
            "workflow",
            "start",
            "--address",
            settings.temporal_address,
            "--type",
            "BlogPublishWorkflow",
            "--task-queue",
            task_queue,
            "--workflow-id",
            workflow_id,
            "--input",
            json.dumps(payload),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_temporal_cli_can_start_a_publish_without_spool_code(client, settings):
    """The README's `temporal workflow start` command, run for real."""
    post = make_post()
    payload = {
        "post": {
            "post_id": post.post_id,
            "author_id": post.author_id,
            "title": post.title,
            "body": post.body,
            "version": 1,
            "tags": ["cli"],
            "followers": FOLLOWERS,
        }
    }
    wf_id = blog_workflow_id(post.post_id, 1)
    async with blog_worker(client, settings):
        done = await asyncio.to_thread(
            temporal_cli_start, settings, settings.queue_pipeline, wf_id, payload
        )
        assert done.returncode == 0, done.stderr
        result = await client.get_workflow_handle(wf_id).result()
    assert result["state"] == "ready"
    assert author_post_count(get_engine(settings), post.author_id) == 1


async def test_invalid_post_through_the_cli_fails_the_job_naming_the_field(client, settings):
    from temporalio.client import WorkflowFailureError

    wf_id = f"post-bad-{uuid.uuid4().hex[:6]}-v1"
    payload = {"post": {"post_id": "bad", "author_id": "a", "title": "t", "body": "   "}}
    async with blog_worker(client, settings):
        done = await asyncio.to_thread(
            temporal_cli_start, settings, settings.queue_pipeline, wf_id, payload
        )
        assert done.returncode == 0, done.stderr
        with pytest.raises(WorkflowFailureError) as err:
            await client.get_workflow_handle(wf_id).result()
        status = (await job_view(client, wf_id)).model_dump(mode="json")
    assert err.value.cause.type == "InvalidPost"
    assert "body" in err.value.cause.message
    assert status["state"] == "failed" and "body" in status["error"]


def spool_upserts(history) -> list[dict[str, list]]:
    """Each upsert of SpoolKind/SpoolStatus in a run's history, decoded, in order."""
    from temporalio.converter import decode_search_attributes

    upserts = [
        decode_search_attributes(
            event.upsert_workflow_search_attributes_event_attributes.search_attributes
        )
        for event in history.events
        if event.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    return [attrs for attrs in upserts if "SpoolKind" in attrs or "SpoolStatus" in attrs]


async def listed(client, query: str) -> list[str]:
    return [w.id async for w in client.list_workflows(query)]


async def test_a_publish_spool_starts_is_filterable_before_any_worker_runs_it(client, settings):
    """Spool's start sets SpoolKind and SpoolStatus, so a job waiting for a worker is already
    found by the UI's filter, and its run upserts only its final status."""
    post = make_post()
    job = await start_blog(client, settings, post)  # no worker polls the queue yet
    processing = f'SpoolKind="blog" AND SpoolStatus="processing" AND WorkflowId="{job.job_id}"'
    await eventually(lambda: listed(client, processing), "the job listed as processing")
    handle = client.get_workflow_handle(job.job_id)
    async with blog_worker(client, settings):
        result = await handle.result()
    assert result["state"] == "ready"
    assert spool_upserts(await handle.fetch_history()) == [
        {"SpoolKind": ["blog"], "SpoolStatus": ["ready"]}
    ]
    ready = f'SpoolKind="blog" AND SpoolStatus="ready" AND WorkflowId="{job.job_id}"'
    await eventually(lambda: listed(client, ready), "the job listed as ready")


class HeldNotifier(LogNotifier):
    """Delivers like the log notifier once ``release`` is set: holds a job in processing,
    heartbeating meanwhile so the step is not timed out and retried."""

    def __init__(self, outbox: Path) -> None:
        super().__init__(outbox)
        self.release = threading.Event()

    def deliver(self, notification):
        from temporalio import activity

        while not self.release.wait(1):
            activity.heartbeat()
        super().deliver(notification)


async def test_a_publish_started_without_search_attributes_gets_both(client, settings):
    """The temporal CLI (or any SDK) starts the job without SpoolKind and SpoolStatus: its
    run upserts them, processing first, so the UI filters it like a job Spool started."""
    post = make_post()
    payload = {
        "post": {
            "post_id": post.post_id,
            "author_id": post.author_id,
            "title": post.title,
            "body": post.body,
            "followers": FOLLOWERS,
        }
    }
    wf_id = blog_workflow_id(post.post_id, 1)
    notifier = HeldNotifier(settings.resolved_notify_outbox)
    async with blog_worker(client, settings, notifier=notifier):
        try:
            done = await asyncio.to_thread(
                temporal_cli_start, settings, settings.queue_pipeline, wf_id, payload
            )
            assert done.returncode == 0, done.stderr
            await eventually(
                lambda: listed(
                    client,
                    f'SpoolKind="blog" AND SpoolStatus="processing" AND WorkflowId="{wf_id}"',
                ),
                "the CLI's job listed as processing",
            )
        finally:
            notifier.release.set()
        handle = client.get_workflow_handle(wf_id)
        assert (await handle.result())["state"] == "ready"
    assert spool_upserts(await handle.fetch_history()) == [
        {"SpoolKind": ["blog"], "SpoolStatus": ["processing"]},
        {"SpoolKind": ["blog"], "SpoolStatus": ["ready"]},
    ]
    await eventually(
        lambda: listed(
            client, f'SpoolKind="blog" AND SpoolStatus="ready" AND WorkflowId="{wf_id}"'
        ),
        "the CLI's job listed as ready",
    )


class DownIndex(SqliteIndex):
    """An index that never answers a write, as Elasticsearch behind a dead proxy."""

    def upsert(self, doc):
        raise IndexUnavailable("connection refused (test)")


async def test_index_post_gives_up_after_index_retry_seconds(client, settings, tmp_path):
    """SPOOL_INDEX_RETRY_SECONDS bounds index_post's retries: past it the step fails, the job
    ends ready_with_errors, and the count and the notifications are delivered anyway."""
    settings = settings.model_copy(update={"index_retry_seconds": 3})
    post = make_post()
    async with blog_worker(client, settings, index=DownIndex(tmp_path / "search.db")):
        # Bounded so that a cut-off that does not apply (a day of retries) fails, not hangs.
        result = await asyncio.wait_for(publish_and_wait(client, settings, post), 300)
        handle = client.get_workflow_handle(blog_workflow_id(post.post_id, 1))
        attempts = await highest_attempt_by_type(handle)
        scheduled = await scheduled_activity(handle, "index_post")
    assert result["state"] == "ready_with_errors"
    steps = {s["name"]: s for s in result["steps"]}
    assert {name: s["state"] for name, s in steps.items()} == {
        "index_post": "failed",
        "record_post_for_author": "done",
        "notify_followers": "done",
    }
    assert result["error"].startswith("index_post: ")
    # It retried while it could, and the bound it gave up at is the setting.
    assert attempts["index_post"] >= 2
    assert scheduled.schedule_to_close_timeout.ToSeconds() == 3
    assert author_post_count(get_engine(settings), post.author_id) == 1
    assert_each_follower_notified_once(settings, post.post_id)


async def scheduled_activity(handle, activity_id: str):
    """The ActivityTaskScheduled attributes of the step: the timeouts the server applies."""
    history = await handle.fetch_history()
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_id == activity_id:
                return attrs
    raise AssertionError(f"{activity_id} was never scheduled")


class StallsOnceNotifier(LogNotifier):
    """Delivers like the log notifier, but the first time it reaches ``stall_on`` it stops
    and never heartbeats again, as a worker killed (or frozen) mid-fan-out does."""

    def __init__(self, outbox: Path, stall_on: str) -> None:
        super().__init__(outbox)
        self.stall_on = stall_on
        self.stalled = threading.Event()
        self.release = threading.Event()

    def deliver(self, notification):
        if notification.recipient == self.stall_on and not self.stalled.is_set():
            self.stalled.set()
            self.release.wait(900)
            raise ConnectionError("the stalled attempt was released after the test")
        super().deliver(notification)


async def test_a_stalled_fan_out_is_retried_after_the_heartbeat_timeout(client, settings):
    """notify_followers heartbeats after each delivery: when an attempt stops mid-fan-out,
    the server times it out on the heartbeat (15 s), not the 30 min start-to-close, and the
    retry delivers to every follower."""
    post = make_post()
    notifier = StallsOnceNotifier(settings.resolved_notify_outbox, stall_on=FOLLOWERS[1])
    async with blog_worker(client, settings, notifier=notifier):
        try:
            job = await start_blog(client, settings, post)
            handle = client.get_workflow_handle(job.job_id)
            assert await asyncio.to_thread(notifier.stalled.wait, 120)
            scheduled = await scheduled_activity(handle, "notify_followers")
            assert scheduled.heartbeat_timeout.ToSeconds() == 15
            assert scheduled.start_to_close_timeout.ToSeconds() == 30 * 60
            result = await handle.result()
        finally:
            # The worker's shutdown waits for the stalled thread: let it end first.
            notifier.release.set()
    assert result["state"] == "ready"
    assert (await highest_attempt_by_type(handle))["notify_followers"] == 2
    # What ended the first attempt, as the second attempt's start records it.
    retried = await retry_cause(handle, "notify_followers")
    assert retried.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    rows = notification_rows(settings, post.post_id)
    assert sorted(r["recipient"] for r in rows) == sorted(FOLLOWERS)
    assert all(r["delivered_at"] is not None for r in rows)
    # The stalled attempt never marked its batch, so the retry re-sent it: at least once,
    # under the same key, which receivers deduplicate on (docs/ARCHITECTURE.md, rule 2).
    sent = outbox_records(settings, post.post_id)
    assert {r["recipient"] for r in sent} == set(FOLLOWERS)
    assert {r["key"] for r in sent} == {
        f"{post_published_event_id(post.post_id)}:{f}" for f in FOLLOWERS
    }


async def retry_cause(handle, activity_id: str):
    """The failure of the previous attempt, as the step's last started attempt records it."""
    history = await handle.fetch_history()
    scheduled_id = None
    cause = None
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_id == activity_id:
                scheduled_id = event.event_id
        elif event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id == scheduled_id and attrs.attempt > 1:
                cause = attrs.last_failure
    assert cause is not None, f"{activity_id} was never retried"
    return cause


async def test_a_publish_is_acknowledged_while_every_api_thread_is_busy(client, settings):
    """POST /v1/posts does nothing that blocks: the key check, the content-type check and the
    start run on the event loop, never in the worker threads that slow reads (a stalled index
    or object store) can fill. Each hop through those threads was also what gave the
    acknowledgement its tail under 100 concurrent publishes (bench/api.py)."""
    import anyio
    import httpx

    from api.app import create_app

    key = "test-key"
    app = create_app(settings.model_copy(update={"api_keys": [key]}), client=client)
    threads = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
    loop = asyncio.get_running_loop()
    all_taken, release = asyncio.Event(), threading.Event()
    taken = itertools.count(1)

    def hold_a_thread() -> None:
        if next(taken) == threads:
            loop.call_soon_threadsafe(all_taken.set)
        release.wait()

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as http,
    ):
        busy = [
            asyncio.create_task(anyio.to_thread.run_sync(hold_a_thread)) for _ in range(threads)
        ]
        try:
            await asyncio.wait_for(all_taken.wait(), 60)
            post = make_post()
            # Bounded so that a publish stuck behind the busy threads fails instead of hanging.
            r = await asyncio.wait_for(
                http.post(
                    "/v1/posts",
                    headers={"Authorization": f"Bearer {key}"},
                    json={k: v for k, v in post.__dict__.items() if v is not None},
                ),
                60,
            )
        finally:
            release.set()
            await asyncio.gather(*busy)
    assert r.status_code == 202, r.text
    assert r.json()["job_id"] == blog_workflow_id(post.post_id, 1)
    # Handed to the post's own workflow, which starts the publishing job once a worker runs it.
    async with blog_worker(client, settings):
        description = await eventually(
            lambda: described(client, r.json()["job_id"]), "the publishing job"
        )
    assert description.workflow_type == "BlogPublishWorkflow"


async def described(client, job_id: str):
    """The job's description, or None while Temporal knows no such job."""
    from temporalio.service import RPCError

    try:
        return await client.get_workflow_handle(job_id).describe()
    except RPCError:
        return None


@pytest.mark.unit
def test_a_quick_fan_out_sends_no_heartbeat_and_a_long_one_beats_each_second():
    """notify_followers' heartbeat timeout counts from the attempt's start, so a fan-out that
    ends within a second needs no heartbeat (each would be a write on the server); a long
    one reports its progress about once a second, far inside the 15 s timeout."""
    from activities.blog import FAN_OUT_HEARTBEAT_SECONDS, throttled_heartbeat

    now = [100.0]
    beats: list[int] = []
    progress = throttled_heartbeat(FAN_OUT_HEARTBEAT_SECONDS, beats.append, lambda: now[0])
    for delivered in range(1, 4):  # three deliveries in the first 0.375 s
        now[0] += 0.125
        progress(delivered)
    assert beats == []
    for delivered in range(4, 40):  # then one delivery every 0.25 s, for 9 s
        now[0] += 0.25
        progress(delivered)
    assert beats == [6, 10, 14, 18, 22, 26, 30, 34, 38]
    assert FAN_OUT_HEARTBEAT_SECONDS * 3 <= 15  # several beats fit in the heartbeat timeout


# Replays a saved publish three times in the sandbox and prints the repository's modules
# whose code ran meanwhile. An audit hook cannot be removed: hence a process of its own.
COUNT_MODULES_RUN_PER_REPLAY = """
import asyncio, json, sys
from pathlib import Path
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from workflows.blog import BlogPublishWorkflow
from workflows.posts import PostWorkflow

repo, ran = Path.cwd(), []

def note_module_code(event, args):
    if event == "exec" and getattr(args[0], "co_name", "") == "<module>":
        path = Path(args[0].co_filename)
        if path.is_absolute() and path.is_relative_to(repo) and ".venv" not in path.parts:
            ran.append(path.relative_to(repo).as_posix())

history = WorkflowHistory.from_json(
    "blog", Path("tests/histories/blog-publish.json").read_text())

async def replay_three_times():
    for _ in range(3):
        result = await Replayer(workflows=[BlogPublishWorkflow]).replay_workflow(
            history, raise_on_replay_failure=False)
        assert result.replay_failure is None, result.replay_failure

sys.addaudithook(note_module_code)
asyncio.run(replay_three_times())
print(json.dumps(sorted(set(ran))))
"""


@pytest.mark.unit
def test_a_blog_run_executes_no_module_but_its_own_in_the_sandbox():
    """The sandbox executes a workflow's module afresh for every run, for isolation; what it
    imports through ``imports_passed_through`` must be the worker's already loaded modules,
    or every run pays for executing them again (workflows/policies.py: every step's policy)."""
    done = subprocess.run(
        [sys.executable, "-c", COUNT_MODULES_RUN_PER_REPLAY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    ran = json.loads(done.stdout.splitlines()[-1])
    assert "workflows/blog.py" in ran  # the hook does see the sandbox's imports
    assert set(ran) <= {"workflows/__init__.py", "workflows/blog.py"}


def as_json(client, value) -> object:
    """A status as its JSON (a typed one as the data converter writes it)."""
    return json.loads(client.data_converter.payload_converter.to_payloads([value])[0].data)


async def heartbeat_cursor(client, handle) -> dict | None:
    """notify_followers' last heartbeated cursor, as the server holds it."""
    desc = await handle.describe()
    for pending in desc.raw_description.pending_activities:
        if pending.activity_id == "notify_followers" and pending.heartbeat_details.payloads:
            return (await client.data_converter.decode(pending.heartbeat_details.payloads))[-1]
    return None


async def test_the_status_is_the_querys_without_a_worker_and_at_once_after_a_sigkill(
    client, settings
):
    """A job in the middle of its fan-out (two of six followers delivered and heartbeated,
    the third's delivery stalled): the status a user gets (spool/service/jobs.py) carries
    what the workflow's ``status`` query answers, read from the run's memo, with the
    heartbeat's progress merged in. Once the only worker is SIGKILLed, it still does: no
    query waits for the dead worker's sticky queue, or for any worker at all."""
    from spool.db.followers import import_follows
    from spool.service import jobs
    from tests.support.processes import start_worker

    post = make_post(followers=None)
    people = [f"reader-{i:02d}" for i in range(6)]
    import_follows(get_engine(settings), ((post.author_id, p) for p in people))
    env = spool_env(settings) | {
        "SPOOL_NOTIFIER": "log",
        "SPOOL_FANOUT_PAGE_SIZE": "2",
        "SPOOL_TEST_STALL_ON": people[2],
    }
    proc = await start_worker(
        env, "--queue", "pipeline", module="tests.support.stalled_fanout_worker"
    )
    job = await start_blog(client, settings, post)
    handle = client.get_workflow_handle(job.job_id)
    try:

        async def stalled_after_a_page() -> dict | None:
            cursor = await heartbeat_cursor(client, handle)
            return cursor if cursor and cursor["walked"] == 2 else None

        cursor = await eventually(stalled_after_a_page, "the first page heartbeated")

        async def others_done() -> dict | None:
            answer = await handle.query("status")
            states = {s["name"]: s["state"] for s in answer["steps"]}
            done = states["index_post"] == states["record_post_for_author"] == "done"
            return answer if done else None

        queried = await eventually(others_done, "index_post and the count done")
        assert {s["name"]: s["state"] for s in queried["steps"]}["notify_followers"] == "running"
        alive = await jobs.status(client, job.job_id)
        assert alive.unavailable is None
        assert as_json(client, alive.pipeline) == queried

        proc.kill()
        await proc.wait()
        dead = await jobs.status(client, job.job_id)  # would wait 10 s for a query, then fail
        assert dead.unavailable is None
        assert as_json(client, dead.pipeline) == queried
        steps = {s.name: s for s in dead.steps}
        assert steps["index_post"].state == steps["record_post_for_author"].state == "done"
        assert steps["notify_followers"].state in ("running", "retrying")
        assert steps["notify_followers"].percent == cursor["percent"] == 33.3
        assert dead.state == "processing"
        assert [(s.name, s.state) for s in alive.steps][:2] == [
            (s.name, s.state) for s in dead.steps
        ][:2]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await handle.terminate("test over")


async def test_the_memo_gets_the_status_at_most_once_a_workflow_task(client, settings):
    """The status is upserted into the memo once at the end of a workflow task that changed
    it, never more often (three steps started together make one upsert), and the last upsert
    is the job's result: the memo a status is read from ends where the query would."""
    post = make_post()
    async with blog_worker(client, settings):
        result = await publish_and_wait(client, settings, post)
    handle = client.get_workflow_handle(blog_workflow_id(post.post_id, post.version))
    tasks = upserts = 0
    last = None
    for event in (await handle.fetch_history()).events:
        if event.HasField("workflow_task_completed_event_attributes"):
            tasks += 1
        elif event.HasField("workflow_properties_modified_event_attributes"):
            upserts += 1
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            last = (await client.data_converter.decode([fields["status"]]))[0]
    assert 1 <= upserts <= tasks
    assert last == result
    first = await handle.describe()
    assert await first.memo_value("status") == result
