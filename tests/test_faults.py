"""The fault matrix, against the real servers: each fault loses no job and repeats no effect.

Every test ends with the same audit: every job in a final state; each author's post count
exact; one notification per (event, recipient) in the ledger and in the outbox; webhooks
delivered once per event (distinct ``webhook-id``s; a receiver may see a retry of one id);
Elasticsearch documents at the post's version; stored files complete and probe-able.

Faults are held by gates, never by guessed delays: a fault strikes once a condition is seen
(a transcode heartbeating progress, N publishes accepted, a row counted), and the only fixed
wait is an outage the scenario itself specifies (Elasticsearch down for 30 s). Deadlines are
generous and only turn a hang into a failure. Recovery times are printed (run with -s), never
asserted: figures belong to bench/.

(The object store stopped mid-job is tests/test_cluster.py::test_storage_stopped_mid_job_then_back.)
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.blog import post_published_event_id
from devstack.proc import free_port
from devstack.stack import EmbeddedStack, local_api_key, local_webhook_secret
from devstack.temporal import DevServer
from spool import db as spool_db
from spool.config import Settings
from spool.db import get_engine
from spool.db.blog import authors
from spool.db.notifications import delivery_key, notifications
from spool.models import Post, blog_workflow_id
from spool.notify import LogNotifier, Notification
from spool.search import open_index
from spool.service.jobs import start_blog
from spool.service.jobs import status as job_view
from spool.storage import keys as storage_keys
from spool.storage import open_storage
from spool.temporal import connect
from tests.support import media_clips, waiting
from tests.support.api import AUTH, api_client, api_settings
from tests.support.history import heartbeating_activities, highest_attempt_by_type
from tests.support.media_checks import ffprobe_json
from tests.support.paths import LOGS
from tests.support.services import service_missing
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.workers import blog_worker, spool_worker

pytestmark = pytest.mark.e2e
SECRET = "whsec_" + "c3Bvb2wtZmF1bHRzLXNlY3JldC0wMTIzNDU2Nzg5"
CAPTIONS_AVAILABLE, VIDEO_READY = "video.captions_available", "video.ready"
LONG = 240.0  # seconds: only turns a hang into a failure (below pytest-timeout's 300)


def figure(name: str, seconds: float) -> None:
    """A recovery time, printed for the report (never asserted)."""
    print(f"\n[fault figure] {name}: {seconds:.1f} s", flush=True)


# The fault tests wait longer (a restarted service) and poll less often.
eventually = functools.partial(waiting.eventually, within=LONG, every=0.2)


# --- posts and their effects ----------------------------------------------------------------


def make_posts(tag: str, authors_n: int, per_author: int, followers_n: int = 3) -> list[Post]:
    """per_author posts by each of authors_n authors, each author with their own followers."""
    run = uuid.uuid4().hex[:6]
    return [
        Post(
            post_id=f"{tag}-{run}-a{a}-p{p}",
            author_id=f"{tag}-{run}-a{a}",
            title=f"Fault matrix post {p} by author {a}",
            body="Counted once, announced once, indexed at its version.",
            version=1,
            followers=[f"{tag}-{run}-a{a}-f{f}" for f in range(followers_n)],
        )
        for p in range(per_author)
        for a in range(authors_n)
    ]


def edit_of(post: Post) -> Post:
    return Post(**{**post.__dict__, "version": post.version + 1, "title": post.title + " (edited)"})


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


async def final_result(client: Client, job_id: str) -> dict:
    """The job's result, waiting through a server restart."""
    deadline = time.monotonic() + LONG
    while True:
        try:
            return await client.get_workflow_handle(job_id).result()
        except RPCError as exc:
            # A job the server no longer knows was accepted, then lost.
            assert exc.status != RPCStatusCode.NOT_FOUND, f"job {job_id} lost: {exc}"
            assert time.monotonic() < deadline, f"{job_id} never finished"
            await asyncio.sleep(0.5)


async def all_final(client: Client, job_ids: Iterable[str]) -> dict[str, dict]:
    ids = list(dict.fromkeys(job_ids))
    results = await asyncio.gather(*(final_result(client, j) for j in ids))
    return dict(zip(ids, results, strict=True))


def counted_posts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(authors.c.author_id, authors.c.post_count)).all())


def ledger_rows(engine: sa.Engine, event_ids: Iterable[str]) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(notifications).where(notifications.c.event_id.in_(list(event_ids)))
            ).mappings()
        ]


def outbox_keys(settings: Settings) -> Counter:
    path = settings.resolved_notify_outbox
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["key"] for line in lines)


def assert_blog_effects(settings: Settings, posts: list[Post], results: dict[str, dict]) -> None:
    """Every job ready; counts exact; one ledger row and one outbox delivery per (post,
    follower): none of these faults crashes a worker between sending and marking, the one
    moment a notification may go out twice (under the same key, for receivers to drop)."""
    not_ready = {j: r["state"] for j, r in results.items() if r["state"] != "ready"}
    assert not not_ready, f"jobs not ready: {not_ready}"
    firsts = [p for p in posts if p.version == 1]
    engine = get_engine(settings)
    expected_counts = Counter(p.author_id for p in firsts)
    assert counted_posts(engine) == dict(expected_counts)
    expected = {(post_published_event_id(p.post_id), f) for p in firsts for f in p.followers}
    rows = ledger_rows(engine, {e for e, _ in expected})
    assert {(r["event_id"], r["recipient"]) for r in rows} == expected
    undelivered = [r for r in rows if r["delivered_at"] is None]
    assert not undelivered, f"{len(undelivered)} notifications never delivered"
    sent = outbox_keys(settings)
    assert set(sent) == {delivery_key(e, f) for e, f in expected}
    twice = {key: n for key, n in sent.items() if n > 1}
    assert not twice, f"{len(twice)} notifications delivered more than once: {twice}"


def assert_indexed_at_versions(settings: Settings, posts: list[Post]) -> None:
    newest = {}
    for p in posts:
        newest[p.post_id] = max(newest.get(p.post_id, 0), p.version)
    index = open_index(settings)
    try:
        index.refresh()
        found = {pid: (doc.version if (doc := index.get(pid)) else None) for pid in newest}
    finally:
        index.close()
    assert found == newest


# --- video: the API, progress, stored files -------------------------------------------------


async def upload_clip(http: httpx.AsyncClient, clip: Path, auth: dict, **fields: str) -> dict:
    r = await http.post(
        "/v1/videos",
        headers=auth,
        data=fields,
        files={"file": (clip.name, clip.read_bytes(), "video/mp4")},
    )
    assert r.status_code == 202, r.text
    return r.json()


async def heartbeating(client: Client, job_id: str, activity_id: str) -> float:
    """Once the activity runs and has heartbeated progress: its percent."""
    handle = client.get_workflow_handle(job_id)

    async def percent() -> float | None:
        for pending, done in await heartbeating_activities(handle):
            if pending.activity_id == activity_id and done > 0:
                return done
        return None

    return await eventually(percent, f"{activity_id} of {job_id} heartbeating progress")


def probe(data: bytes, suffix: str) -> dict:
    """ffprobe's view of a stored file (format name and duration); fails if unreadable."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        return ffprobe_json(Path(fh.name), "-show_entries", "format=format_name,duration")["format"]


def assert_video_files_complete(
    settings: Settings, video_id: str, renditions: list[str], seconds: float
) -> None:
    """Every rendition, the poster and the captions are stored whole: each probes, and each
    rendition lasts as long as the source."""
    storage = open_storage(settings)
    present = set(storage.list_prefix(storage_keys.video_prefix(video_id)))
    wanted = {storage_keys.rendition_key(video_id, name): ".mp4" for name in renditions}
    wanted[storage_keys.poster_key(video_id)] = ".jpg"
    for fmt in ("vtt", "srt"):
        wanted[storage_keys.captions_key(video_id, "en", fmt)] = f".{fmt}"
    assert set(wanted) <= present, f"missing: {sorted(set(wanted) - present)}"
    for key, suffix in wanted.items():
        fmt = probe(storage.read_bytes(key), suffix)
        if suffix == ".mp4":
            assert abs(float(fmt["duration"]) - seconds) < 1.0, (key, fmt)


def assert_events_once(receiver: WebhookReceiver, event_types: set[str]) -> None:
    """Each event delivered by exactly one id, none missing, nothing else, every signature
    valid."""
    assert receiver.unverified == []
    ids = receiver.ids_by_type()
    assert set(ids) == event_types, ids
    assert all(len(found) == 1 for found in ids.values()), ids


@pytest.fixture
def keeper():
    """One thread that outlives every server a test restarts on it: a child's parent-death
    signal (spool.process.die_with_parent) fires when the *thread* that started it ends, and
    a restart must not block the event loop the in-process worker runs on. Fixtures that
    depend on this one stop their servers before it ends."""
    with ThreadPoolExecutor(1, thread_name_prefix="server-keeper") as pool:
        yield pool


async def on(keeper: ThreadPoolExecutor, fn: Callable, *args):
    return await asyncio.wrap_future(keeper.submit(fn, *args))


# --- the embedded stack, killed and restarted -----------------------------------------------


@pytest.fixture
def stack_settings(tmp_path, monkeypatch) -> Settings:
    """Settings for an embedded stack in tmp_path; its processes inherit this environment."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", api_port=free_port())
    monkeypatch.setenv("SPOOL_API_PORT", str(settings.api_port))
    # The webhook receiver is on loopback, as a developer's is (the stack's default).
    monkeypatch.setenv("SPOOL_WEBHOOK_ALLOW_PRIVATE", "true")
    return settings


def start_first_stack(settings: Settings, **kwargs) -> EmbeddedStack:
    """The stack before any fault: not starting is a missing service, not a finding."""
    stack = EmbeddedStack(settings, temporal_port=free_port(), ui_port=free_port(), **kwargs)
    try:
        return stack.start()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"the embedded stack did not start: {exc}")
        raise


def kill_stack(stack: EmbeddedStack) -> None:
    """SIGKILL the dev server, the worker and the API, each process group, at once."""
    procs = [*stack.procs.values(), stack.server.proc]
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        proc.wait(30)
    stack.procs.clear()
    stack.server = None


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


async def stack_client(stack: EmbeddedStack) -> Client:
    return await connect(
        Settings(_env_file=None, temporal_address=stack.temporal_address), wait_seconds=60
    )


async def test_whole_stack_killed_mid_video_ends_ready_and_each_event_arrives_once(
    stack_settings, clips, whisper_ready
):
    seconds = 20.0  # read at native pace: the transcode surely runs when the kill comes
    clip = media_clips.make_clip(
        clips / "twenty.mp4", width=854, height=480, seconds=seconds, pattern="testsrc2"
    )
    paced = ["-m", "tests.support.paced_worker"]
    stacks = [start_first_stack(stack_settings, worker_args=paced)]
    receiver = WebhookReceiver(local_webhook_secret(stack_settings)).start()
    try:
        first = stacks[0]
        async with httpx.AsyncClient(base_url=first.api_url, timeout=120) as http:
            stack_auth = {"Authorization": f"Bearer {local_api_key(stack_settings)}"}
            job = await upload_clip(http, clip, stack_auth, callback_url=receiver.url)
        percent = await heartbeating(await stack_client(first), job["job_id"], "encode-00000")
        kill_stack(first)
        killed = time.monotonic()
        print(f"\n[fault] whole stack SIGKILLed with encode-00000 at {percent:.0f} %")
        stacks.append(
            EmbeddedStack(
                stack_settings,
                temporal_port=first.temporal_port,
                ui_port=first.ui_port,
                worker_args=paced,
            ).start()
        )
        figure("whole stack: restart on the same data", time.monotonic() - killed)
        client = await stack_client(stacks[-1])
        handle = client.get_workflow_handle(job["job_id"])
        result = await final_result(client, job["job_id"])
        figure("whole stack: kill -> job ready", time.monotonic() - killed)
        async with httpx.AsyncClient(base_url=stacks[-1].api_url, timeout=120) as http:
            video = (await http.get(f"/v1/videos/{job['video_id']}")).json()
        attempts = await highest_attempt_by_type(handle)
        child = await client.get_workflow_handle(f"{job['job_id']}-captions").describe()
    finally:
        receiver.stop()
        for stack in reversed(stacks):
            stack.stop()
    assert result["state"] == video["state"] == "ready", (result, video)
    assert [r["name"] for r in video["renditions"]] == ["480p", "360p"]
    assert video["captions"]["state"] == "available" and video["poster_url"]
    assert child.status == WorkflowExecutionStatus.COMPLETED
    # The kill landed mid-encode: the chunk that was running had to run again.
    assert attempts["video.encode_chunk"] >= 2, attempts
    assert open_storage(stack_settings).exists(storage_keys.hls_master_key(job["video_id"]))
    assert_video_files_complete(stack_settings, job["video_id"], ["480p", "360p"], seconds)
    assert_events_once(receiver, {CAPTIONS_AVAILABLE, VIDEO_READY})
    rows = ledger_rows(
        get_engine(stack_settings),
        [f"captions-available:{job['video_id']}", f"video-done:{job['video_id']}"],
    )
    assert {r["recipient"] for r in rows} == {receiver.url, "api"}
    assert all(r["delivered_at"] is not None for r in rows), rows


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


# --- PostgreSQL restarted -------------------------------------------------------------------


@pytest.fixture
def own_postgres(keeper):
    """A PostgreSQL of this test's own: restarting the session's would disturb other tests."""
    from devstack.postgres import PostgresServer

    server = PostgresServer(free_port(), LOGS / "postgres-faults.log")
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"PostgreSQL did not start: {exc}")
    try:
        yield server
    finally:
        engine = spool_db._engines.pop(server.url, None)
        if engine is not None:
            engine.dispose()
        server.stop()


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


async def retried_steps(client: Client, job_ids: Iterable[str]) -> Counter:
    """How many jobs ran each step more than once."""
    retried: Counter = Counter()
    for job_id in job_ids:
        for name, attempt in (
            await highest_attempt_by_type(client.get_workflow_handle(job_id))
        ).items():
            retried[name] += attempt > 1
    return retried


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
    from devstack.elasticsearch import ElasticsearchNode

    # As root the node runs as an unprivileged user, which cannot enter pytest's 0700 temp
    # root (tests/support/es_fixtures.py does the same).
    private = os.geteuid() == 0
    home = (
        Path(tempfile.mkdtemp(prefix="spool-es-faults-"))
        if private
        else tmp_path_factory.mktemp("es-faults")
    )
    home.chmod(0o755)
    node = ElasticsearchNode(home / "node", free_port(), LOGS / "elasticsearch-faults.log")
    try:
        node.start()
    except Exception as exc:  # noqa: BLE001
        shutil.rmtree(home, ignore_errors=True)
        service_missing(f"Elasticsearch did not start: {exc}")
    try:
        yield node
    finally:
        node.stop()
        if private:
            shutil.rmtree(home, ignore_errors=True)


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


# --- a webhook receiver down for a while ----------------------------------------------------


def webhook_test_settings(settings: Settings) -> Settings:
    return api_settings(
        settings, notifier="webhook", webhook_secret=SECRET, webhook_allowlist=["127.0.0.1/32"]
    )


def video_event_ids(video_id: str) -> list[str]:
    return [f"captions-available:{video_id}", f"video-done:{video_id}"]


def attempts_to(engine: sa.Engine, video_id: str, url: str) -> dict[str, int]:
    """Delivery attempts so far of each of the video's events to ``url``, by the ledger."""
    return {
        r["event_id"]: r["attempts"]
        for r in ledger_rows(engine, video_event_ids(video_id))
        if r["recipient"] == url
    }


async def run_video_with_receiver(
    client: Client,
    s: Settings,
    clip: Path,
    receiver: WebhookReceiver,
    gate: Callable[[str], object],
) -> dict:
    """Upload through the API with the receiver as callback; once ``gate(video_id)`` holds,
    start the receiver (if down); return the job's result once the workflow closed."""
    async with api_client(s, client) as http:
        job = await upload_clip(http, clip, AUTH, callback_url=receiver.url)
        async with spool_worker(client, s):
            handle = client.get_workflow_handle(job["job_id"])

            async def outage_over() -> bool:
                # A job that closed while the receiver was away has nothing left to send:
                # the assertions then say what never arrived.
                return bool(gate(job["video_id"])) or (
                    (await handle.describe()).status != WorkflowExecutionStatus.RUNNING
                )

            await eventually(outage_over, "the receiver's outage gate")
            back = time.monotonic()
            receiver.start()
            result = await final_result(client, job["job_id"])
            figure("webhook receiver: back -> job closed", time.monotonic() - back)
    return {**result, "video_id": job["video_id"]}


@pytest.fixture
def talk_clip(clips) -> Path:
    return media_clips.make_clip(
        clips / "talk.mp4",
        width=320,
        height=240,
        seconds=2.5,
        speech="Spool announces captions first",
    )


async def test_receiver_down_then_back_gets_each_event_once(
    client, settings, talk_clip, whisper_ready
):
    s = webhook_test_settings(settings)
    receiver = WebhookReceiver(SECRET)  # not listening: connections are refused
    engine = get_engine(s)

    def refused_twice(video_id: str) -> bool:
        # The first event (captions available) refused twice; video.ready is held back
        # until it is delivered (in order per video), so the outage covers both.
        tried = attempts_to(engine, video_id, receiver.url)
        return tried.get(f"captions-available:{video_id}", 0) >= 2

    try:
        result = await run_video_with_receiver(client, s, talk_clip, receiver, refused_twice)
    finally:
        receiver.stop()
    assert result["state"] == "ready", result
    assert_events_once(receiver, {CAPTIONS_AVAILABLE, VIDEO_READY})
    rows = ledger_rows(engine, video_event_ids(result["video_id"]))
    assert all(r["delivered_at"] is not None for r in rows), rows
    tried = attempts_to(engine, result["video_id"], receiver.url)
    print(f"\n[fault] receiver down: attempts {tried}, re-sends absorbed {receiver.resends()}")


class DeliveredOutOfOrder(AssertionError):
    """video.ready reached a receiver before video.captions_available of the same video."""


async def test_receiver_back_gets_captions_available_before_video_ready(
    client, settings, talk_clip, whisper_ready
):
    """In order per video means: to one destination, video.ready is never delivered before
    video.captions_available when the captions were available before the job ended. The
    receiver answers 503 while its app is down and comes back at the first video.ready
    request it sees, a moment any outage can end at; if Spool held video.ready back, the
    receiver comes back instead after refusing captions-available 5 times."""
    s = webhook_test_settings(settings)
    state = {"back": False, "captions_refused": 0}

    def answer(event: dict) -> int:
        if event["type"] == VIDEO_READY or state["captions_refused"] >= 5:
            state["back"] = True
        if state["back"]:
            return 204
        state["captions_refused"] += event["type"] == CAPTIONS_AVAILABLE
        return 503

    receiver = WebhookReceiver(SECRET, answer=answer)
    try:
        result = await run_video_with_receiver(
            client, s, talk_clip, receiver, lambda _video_id: True
        )
    finally:
        receiver.stop()
    assert result["state"] == "ready", result
    assert result["captions_state"] == "available", result
    assert_events_once(receiver, {CAPTIONS_AVAILABLE, VIDEO_READY})
    order = receiver.accepted_types_in_order()
    if order != [CAPTIONS_AVAILABLE, VIDEO_READY]:
        # Its own exception: the xfail documents this bug only, and any other failure shows.
        raise DeliveredOutOfOrder(f"accepted in this order: {order}")


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
