"""The database effects that must happen once, on both supported databases.

SQLite is the embedded default; PostgreSQL is what docker-compose runs. The unique-key
"insert, and count only if new" transactions use dialect-specific upserts, so both run here.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from spool.db.blog import add_followers, author_post_count, followers_of, get_post
from spool.db.blog import record_post_for_author as record
from spool.db.notifications import notifications
from spool.notify import notify_once
from tests.support.notifiers import Recorder

pytestmark = pytest.mark.unit

# engine (each test on SQLite and on PostgreSQL): from the tests.support.pg_fixtures plugin.


def ids() -> tuple[str, str]:
    uid = uuid.uuid4().hex[:8]
    return f"author-{uid}", f"post-{uid}"


def test_a_post_is_counted_once_across_retries_and_edits(engine):
    author, post = ids()
    first = record(
        engine, author_id=author, post_id=post, version=1, title="v1", tags=[], published_at=None
    )
    retry = record(
        engine, author_id=author, post_id=post, version=1, title="v1", tags=[], published_at=None
    )
    edit = record(
        engine, author_id=author, post_id=post, version=2, title="v2", tags=["x"], published_at=None
    )
    late = record(
        engine,
        author_id=author,
        post_id=post,
        version=1,
        title="v1 late",
        tags=[],
        published_at=None,
    )
    assert [first.counted, retry.counted, edit.counted, late.counted] == [True, False, False, False]
    assert author_post_count(engine, author) == 1
    stored = get_post(engine, post)
    assert (stored["version"], stored["title"], stored["tags"]) == (2, "v2", ["x"])


def test_each_of_an_authors_posts_adds_one_to_the_count(engine):
    author, _ = ids()
    outcomes = [
        record(
            engine,
            author_id=author,
            post_id=f"{author}-{n}",
            version=version,
            title="t",
            tags=[],
            published_at=None,
        )
        for n, version in ((1, 1), (2, 1), (2, 1), (3, 1), (3, 2))
    ]
    # The third call retries post 2 and the fifth edits post 3: both already counted.
    assert [(o.counted, o.post_count) for o in outcomes] == [
        (True, 1),
        (True, 2),
        (False, 2),
        (True, 3),
        (False, 3),
    ]
    assert author_post_count(engine, author) == 3


def test_the_stored_post_is_the_newest_versions_metadata_and_only_its_own(engine):
    author, post = ids()
    _, other = ids()
    record(
        engine,
        author_id=author,
        post_id=post,
        version=1,
        title="first",
        tags=["a"],
        published_at="2026-01-01T00:00:00Z",
    )
    record(
        engine,
        author_id=author,
        post_id=other,
        version=1,
        title="other",
        tags=["o"],
        published_at="2026-01-02T00:00:00Z",
    )
    first = get_post(engine, post)
    assert (first["tags"], first["published_at"]) == (["a"], "2026-01-01T00:00:00Z")
    # A retry of the same version with other data changes nothing: the version is the key.
    record(
        engine,
        author_id=author,
        post_id=post,
        version=1,
        title="replayed",
        tags=[],
        published_at=None,
    )
    assert get_post(engine, post)["title"] == "first"
    # An edit takes every field of the new version (a post handed to a co-author included)
    # and touches no other post.
    record(
        engine,
        author_id="co-author",
        post_id=post,
        version=2,
        title="second",
        tags=["b"],
        published_at="2026-02-01T00:00:00Z",
    )
    edited = get_post(engine, post)
    assert (
        edited["author_id"],
        edited["version"],
        edited["title"],
        edited["tags"],
        edited["published_at"],
    ) == ("co-author", 2, "second", ["b"], "2026-02-01T00:00:00Z")
    assert (get_post(engine, other)["title"], get_post(engine, other)["version"]) == ("other", 1)
    assert author_post_count(engine, "nobody-" + author) == 0


def test_concurrent_attempts_count_once(engine):
    author, post = ids()
    outcomes: list = []
    errors: list[BaseException] = []
    # Every thread waits here, so the eight attempts really overlap.
    start_together = threading.Barrier(8)

    def attempt():
        start_together.wait()
        try:
            outcomes.append(
                record(
                    engine,
                    author_id=author,
                    post_id=post,
                    version=1,
                    title="t",
                    tags=[],
                    published_at=None,
                )
            )
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The unique key serialises the attempts: none fails, exactly one counts, and each one
    # reports the count as it stands after the single increment.
    assert errors == []
    assert sorted(o.counted for o in outcomes) == [False] * 7 + [True]
    assert [o.post_count for o in outcomes] == [1] * 8
    assert author_post_count(engine, author) == 1
    retry = record(
        engine, author_id=author, post_id=post, version=1, title="t", tags=[], published_at=None
    )
    assert (retry.counted, retry.post_count) == (False, 1)
    assert author_post_count(engine, author) == 1


def test_notifications_are_created_and_delivered_once_per_recipient(engine):
    event = f"evt-{uuid.uuid4().hex[:8]}"
    recorder = Recorder(fail_on="c")
    kwargs = dict(
        event_id=event,
        event_type="post.published",
        recipients=["a", "b", "c", "a"],
        payload={"k": 1},
    )
    with pytest.raises(ConnectionError):
        notify_once(engine, recorder, **kwargs)
    assert [n.recipient for n in recorder.sent] == ["a", "b"]
    outcome = notify_once(engine, recorder, **kwargs)  # the activity's retry
    assert [n.recipient for n in recorder.sent] == ["a", "b", "c"]
    assert outcome.newly_created == 0 and outcome.delivered == 1
    assert notify_once(engine, recorder, **kwargs).delivered == 0
    assert {n.key for n in recorder.sent} == {f"{event}:a", f"{event}:b", f"{event}:c"}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(notifications.c.recipient, notifications.c.attempts).where(
                notifications.c.event_id == event
            )
        ).all()
    assert sorted(rows) == [("a", 1), ("b", 1), ("c", 2)]


def test_followers_are_stored_once(engine):
    author, _ = ids()
    add_followers(engine, author, ["y", "x"])
    add_followers(engine, author, ["x", "z"])
    assert followers_of(engine, author) == ["x", "y", "z"]


def test_caption_segments_are_replaced_whole(engine):
    from spool.db.video import ensure_video, get_caption_segments, replace_caption_segments

    video = f"v-{uuid.uuid4().hex[:8]}"
    ensure_video(engine, video, "owner", "processing")
    three = [{"start": i, "end": i + 1, "text": f"cue {i}"} for i in range(3)]
    replace_caption_segments(engine, video, three)
    replace_caption_segments(engine, video, three)  # a retry
    assert [s["text"] for s in get_caption_segments(engine, video)] == ["cue 0", "cue 1", "cue 2"]
    replace_caption_segments(engine, video, three[:1])
    assert [(s["idx"], s["text"]) for s in get_caption_segments(engine, video)] == [(0, "cue 0")]
    replace_caption_segments(engine, video, [])
    assert get_caption_segments(engine, video) == []


def test_notifications_carry_their_event_and_progress_counts_every_delivery(engine, monkeypatch):
    from spool import notify

    event = f"evt-{uuid.uuid4().hex[:8]}"
    people = [f"r{i:03d}" for i in range(120)]  # more than one marking batch
    recorder, progress = Recorder(), []
    real_mark = notify._mark_delivered

    def mark_after_one_wait(engine, event_id, sent, on_wait=None, **kw):
        on_wait()  # as while the database is briefly away: the activity keeps heartbeating
        return real_mark(engine, event_id, sent, on_wait=on_wait, **kw)

    monkeypatch.setattr(notify, "_mark_delivered", mark_after_one_wait)
    outcome = notify_once(
        engine,
        recorder,
        event_id=event,
        event_type="post.published",
        recipients=people,
        payload={"k": 1},
        on_progress=progress.append,
    )
    assert (outcome.recipients, outcome.newly_created, outcome.delivered) == (120, 120, 120)
    assert sorted(n.recipient for n in recorder.sent) == people
    assert {(n.event_id, n.event_type, json_of(n.payload)) for n in recorder.sent} == {
        (event, "post.published", '{"k": 1}')
    }
    batches = [people[:50], people[50:100], people[100:]]
    expected, done = [], 0
    for batch in batches:
        expected += list(range(done + 1, done + len(batch) + 1)) + [done + len(batch)]
        done += len(batch)
    assert progress == expected


def json_of(value) -> str:
    import json

    return json.dumps(value, sort_keys=True)


class WithEndpoints(Recorder):
    """A notifier that adds subscribers and the callback to every event, as the webhook
    notifier does."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = urls
        self.asked: list[str | None] = []

    def destinations(self, callback_url: str | None) -> list[str]:
        self.asked.append(callback_url)
        return [*self.urls, *([callback_url] if callback_url else [])]


def test_subscribers_are_added_after_the_people_once_each(engine):
    event = f"evt-{uuid.uuid4().hex[:8]}"
    notifier = WithEndpoints(["https://hooks.example/1", "a"])
    outcome = notify_once(
        engine,
        notifier,
        event_id=event,
        event_type="t",
        recipients=["a", "b"],
        payload={"post_id": "p"},
        callback_url="https://hooks.example/job",
    )
    # The job's callback is handed over explicitly, never fished out of the payload.
    assert notifier.asked == ["https://hooks.example/job"]
    assert outcome.recipients == 4 and outcome.delivered == 4
    assert [n.recipient for n in notifier.sent] == [
        "a",
        "b",
        "https://hooks.example/1",
        "https://hooks.example/job",
    ]
    assert all(n.payload == {"post_id": "p"} for n in notifier.sent)
    nobody = notify_once(
        engine, Recorder(), event_id=f"{event}-none", event_type="t", recipients=[], payload={}
    )
    assert (nobody.recipients, nobody.newly_created, nobody.delivered) == (0, 0, 0)


def test_one_events_ledger_never_touches_another_events(engine):
    first, second = (f"evt-{uuid.uuid4().hex[:8]}" for _ in range(2))
    down = Recorder(fail_on="a")
    with pytest.raises(ConnectionError):
        notify_once(engine, down, event_id=first, event_type="t", recipients=["a"], payload={})
    other = Recorder()
    notify_once(engine, other, event_id=second, event_type="t", recipients=["a"], payload={})
    assert [n.key for n in other.sent] == [f"{second}:a"]  # not the first event's pending row
    retry = Recorder()
    assert (
        notify_once(
            engine, retry, event_id=first, event_type="t", recipients=["a"], payload={}
        ).delivered
        == 1
    )  # still pending: the second did not mark it
    assert [n.key for n in retry.sent] == [f"{first}:a"]


def test_make_notifier_follows_the_setting(tmp_path):
    from spool.config import Settings
    from spool.notify import LogNotifier, WebhookNotifier, make_notifier

    log_settings = Settings(_env_file=None, data_dir=tmp_path, notifier="log")
    plain = make_notifier(log_settings)
    assert isinstance(plain, LogNotifier) and plain.outbox == log_settings.resolved_notify_outbox
    hook_settings = Settings(_env_file=None, data_dir=tmp_path, notifier="webhook")
    hooks = make_notifier(hook_settings)
    assert isinstance(hooks, WebhookNotifier) and hooks.settings is hook_settings
    assert isinstance(hooks.fallback, LogNotifier)
    assert hooks.fallback.outbox == hook_settings.resolved_notify_outbox
    with pytest.raises(ValueError, match=r"unknown notifier 'pigeon' \(SPOOL_NOTIFIER\)"):
        make_notifier(log_settings.model_copy(update={"notifier": "pigeon"}))


class FlakyEngine:
    """An engine whose first ``failures`` transactions fail as an unreachable database."""

    def __init__(self, engine, failures: int) -> None:
        self.engine = engine
        self.failures = failures

    def begin(self):
        if self.failures:
            self.failures -= 1
            raise sa.exc.OperationalError("UPDATE", {}, Exception("server closed the connection"))
        return self.engine.begin()


@pytest.fixture
def fake_clock(monkeypatch):
    """time.monotonic and time.sleep of spool.notify on a clock that sleeping advances."""
    from spool import notify

    clock = {"now": 0.0, "slept": []}

    def sleep(seconds: float) -> None:
        clock["slept"].append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(notify.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(notify.time, "sleep", sleep)
    return clock


def pending_row(engine, recipients: list[str]) -> str:
    event = f"evt-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(
            notifications.insert(),
            [
                {"event_id": event, "recipient": r, "event_type": "t", "payload": {}}
                for r in recipients
            ],
        )
    return event


def delivered(engine, event: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                sa.select(notifications.c.recipient).where(
                    notifications.c.event_id == event, notifications.c.delivered_at.is_not(None)
                )
            ).scalars()
        )


def test_marking_delivered_waits_out_a_database_outage(engine, fake_clock, caplog):
    from spool.notify import _mark_delivered

    event = pending_row(engine, ["a", "b", "c"])
    waits = []
    _mark_delivered(
        FlakyEngine(engine, failures=7),
        event,
        ["a", "b"],
        on_wait=lambda: waits.append(1),
        wait_seconds=60,
    )
    assert delivered(engine, event) == ["a", "b"]
    # Backing off from 0.2 s, doubling, capped at 5 s, heartbeating between tries.
    assert fake_clock["slept"] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert len(waits) == 7
    assert (
        "marking 2 notifications of " + event + " delivered: database unavailable "
        "(server closed the connection); retrying"
    ) in caplog.messages


def test_marking_delivered_gives_up_at_its_deadline(engine, fake_clock):
    from spool.notify import _mark_delivered

    event = pending_row(engine, ["a"])
    # The deadline falls exactly when the second pause would end: that pause is still taken.
    with pytest.raises(sa.exc.OperationalError):
        _mark_delivered(FlakyEngine(engine, failures=99), event, ["a"], wait_seconds=0.2 + 0.4)
    assert fake_clock["slept"] == [0.2, 0.4]
    with pytest.raises(sa.exc.OperationalError):
        _mark_delivered(FlakyEngine(engine, failures=99), event, ["a"], wait_seconds=0)
    assert fake_clock["slept"] == [0.2, 0.4]  # no wait at all without time for one
    assert delivered(engine, event) == []
