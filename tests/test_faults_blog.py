"""Faults of the blog's services, against the real servers: PostgreSQL restarted in the
middle of a run of publishes, and Elasticsearch stopped for 30 s under a stream of them. Each
ends with the audit of tests/support/fault_audit.py: every job ready, each author's post
count exact, one notification per (event, recipient), documents at the post's version.

The means (gates, not delays; figures printed, never asserted): tests/support/faults.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from temporalio.client import Client, WorkflowExecutionStatus

from activities.blog import post_published_event_id
from devstack.proc import free_port
from spool import db as spool_db
from spool.config import Settings
from spool.db import get_engine
from spool.models import Post, blog_workflow_id
from spool.notify import LogNotifier, Notification
from spool.service.jobs import start_blog
from spool.service.jobs import status as job_view
from tests.support.es_fixtures import elasticsearch_node
from tests.support.fault_audit import assert_blog_effects, assert_indexed_at_versions, make_posts
from tests.support.faults import LONG, all_final, eventually, figure, on, retried_steps
from tests.support.paths import LOGS
from tests.support.services import started
from tests.support.workers import blog_worker

pytestmark = pytest.mark.e2e


def edit_of(post: Post) -> Post:
    return Post(**{**post.__dict__, "version": post.version + 1, "title": post.title + " (edited)"})


# --- PostgreSQL restarted -------------------------------------------------------------------


@pytest.fixture
def own_postgres(keeper):
    """A PostgreSQL of this test's own: restarting the session's would disturb other tests."""
    from devstack.postgres import PostgresServer

    with started(PostgresServer(free_port(), LOGS / "postgres-faults.log"), "PostgreSQL") as server:
        try:
            yield server
        finally:
            engine = spool_db._engines.pop(server.url, None)
            if engine is not None:
                engine.dispose()


class HoldAfterDelivery:
    """The log notifier, holding the delivery of ``event_id``'s first notification until
    PostgreSQL has gone down, then noting when that activity's next database call fails:
    the gates that keep the database down exactly while the ledger tries to mark what went
    out, the one moment where a lost mark makes the activity's retry deliver it again."""

    def __init__(self, settings: Settings, event_id: str, server) -> None:
        self.inner = LogNotifier(settings.resolved_notify_outbox)
        self.event_id = event_id
        self.server = server
        self.delivered = threading.Event()
        self.mark_failed = threading.Event()
        self._thread: int | None = None
        self._lock = threading.Lock()
        sa.event.listen(get_engine(settings), "handle_error", self._on_db_error)

    def destinations(self, callback_url: str | None) -> list[str]:
        return self.inner.destinations(callback_url)

    def deliver(self, notification: Notification) -> None:
        self.inner.deliver(notification)
        with self._lock:
            if notification.event_id != self.event_id or self.delivered.is_set():
                return
            postmaster = self.server.proc
            self._thread = threading.get_ident()
            self.delivered.set()
        deadline = time.monotonic() + LONG
        while postmaster.poll() is None:  # until the test's restart has stopped it
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL was never stopped")
            time.sleep(0.05)

    def _on_db_error(self, _context) -> None:
        if threading.get_ident() == self._thread:
            self.mark_failed.set()

    def hold_until_mark_failed(self) -> None:
        """While the server is down: until the held activity has tried its database."""
        if not self.mark_failed.wait(LONG):
            raise RuntimeError("the held activity never tried to mark its deliveries")


async def test_postgres_restarted_mid_publishes_counts_stay_exact(
    client, settings, keeper, own_postgres
):
    s = settings.model_copy(update={"database_url": own_postgres.url})
    posts = make_posts("pg", authors_n=4, per_author=15)
    before, after = posts[::2], posts[1::2]  # every author has posts on both sides
    gate = HoldAfterDelivery(s, post_published_event_id(before[5].post_id), own_postgres)
    async with blog_worker(client, s, notifier=gate):
        jobs = [(await start_blog(client, s, p)).job_id for p in before]
        await eventually(gate.delivered.is_set, "a notification delivered")
        counted = len(await completed_jobs(client, jobs))
        # In flight while the database goes down and comes back.
        jobs += [(await start_blog(client, s, p)).job_id for p in after]
        down = time.monotonic()
        await on(keeper, lambda: own_postgres.restart(while_down=gate.hold_until_mark_failed))
        figure("PostgreSQL: restart (fast shutdown -> accepting)", time.monotonic() - down)
        results = await all_final(client, jobs)
        figure("PostgreSQL: restart -> all publishes final", time.monotonic() - down)
    print(
        f"\n[fault] PostgreSQL restarted with {counted} of {len(before)} publishes done; "
        f"jobs that retried each step: {dict(await retried_steps(client, jobs))}"
    )
    assert_blog_effects(s, posts, results)
    assert_indexed_at_versions(s, posts)


async def completed_jobs(client: Client, job_ids: list[str]) -> list[str]:
    """The jobs already completed."""
    done = []
    for job_id in job_ids:
        desc = await client.get_workflow_handle(job_id).describe()
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            done.append(job_id)
    return done


# --- Elasticsearch stopped for 30 s ---------------------------------------------------------


@pytest.fixture
def own_elasticsearch(tmp_path_factory, keeper):
    """An Elasticsearch node of this test's own, stopped and started again on its home."""
    log_path = LOGS / "elasticsearch-faults.log"
    with elasticsearch_node(tmp_path_factory, "es-faults", log_path) as node:
        yield node


def steps_of(status: dict) -> dict[str, str]:
    return {step["name"]: step["state"] for step in status.get("steps", [])}


async def test_elasticsearch_down_30s_under_a_stream_of_publishes(
    client, settings, keeper, own_elasticsearch
):
    outage = 30.0  # the fault itself, as specified: not a synchronisation
    s = settings.model_copy(
        update={
            "elasticsearch_url": own_elasticsearch.url,
            "elasticsearch_index": f"faults-{uuid.uuid4().hex[:8]}",
        }
    )
    posts = make_posts("es", authors_n=3, per_author=8)
    early, during, late = posts[:9], posts[9:18], posts[18:]
    edits = [edit_of(p) for p in early[:3]]  # must end at version 2 in the index
    published: list[Post] = []
    jobs: list[str] = []

    async def publish(post: Post) -> None:
        jobs.append((await start_blog(client, s, post)).job_id)
        published.append(post)

    async with blog_worker(client, s):
        for post in early:
            await publish(post)
        await all_final(client, jobs)
        await on(keeper, own_elasticsearch.stop)
        down = time.monotonic()
        for post in during + edits:
            await publish(post)
            # A stream, one publish a second: paced input through the outage, not a wait.
            await asyncio.sleep(1.0)
        retrying = await eventually(
            lambda: _index_retrying(client, blog_workflow_id(during[0].post_id, 1)),
            "index_post shown retrying while Elasticsearch is down",
        )
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - down)))
        await on(keeper, own_elasticsearch.start)
        up = time.monotonic()
        figure("Elasticsearch: down (stopped -> healthy again)", up - down)
        for post in late:
            await publish(post)
        results = await all_final(client, jobs)
        figure("Elasticsearch: healthy -> all publishes final", time.monotonic() - up)
    assert steps_of(retrying) == {
        "index_post": "retrying",
        "record_post_for_author": "done",
        "notify_followers": "done",
    }, retrying
    assert "unavailable" in next(
        st["last_error"] for st in retrying["steps"] if st["name"] == "index_post"
    )
    assert len(published) == len(posts) + len(edits)
    assert_blog_effects(s, published, results)
    assert_indexed_at_versions(s, published)
    assert_each_document_once(s, published)


async def _index_retrying(client: Client, job_id: str) -> dict | None:
    """The job's status once index_post retries beside the two done steps, or once the job
    ended (which the caller's assertion then reports)."""
    status = (await job_view(client, job_id)).model_dump(mode="json")
    steps = steps_of(status)
    ready = steps.get("record_post_for_author") == steps.get("notify_followers") == "done"
    ended = status.get("state") != "processing"
    return status if ended or (steps.get("index_post") == "retrying" and ready) else None


def assert_each_document_once(settings: Settings, posts: list[Post]) -> None:
    """One document per post, its Elasticsearch version the post's newest (external
    versioning: a retry at the same version cannot write it again)."""
    from elasticsearch import Elasticsearch

    newest = {}
    for p in posts:
        newest[p.post_id] = max(newest.get(p.post_id, 0), p.version)
    es = Elasticsearch(settings.elasticsearch_url)
    try:
        es.indices.refresh(index=settings.elasticsearch_index)
        assert es.count(index=settings.elasticsearch_index)["count"] == len(newest)
        versions = {
            pid: es.get(index=settings.elasticsearch_index, id=pid)["_version"] for pid in newest
        }
    finally:
        es.close()
    assert versions == newest
