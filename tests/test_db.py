"""The database effects that must happen once, on both supported databases.

SQLite is the embedded default; PostgreSQL is what docker-compose runs. The unique-key
"insert, and count only if new" transactions use dialect-specific upserts, so both run here.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from spool.db import create_schema, make_engine
from spool.db.blog import add_followers, author_post_count, followers_of, get_post
from spool.db.blog import record_post_for_author as record
from spool.db.notifications import notifications
from spool.notify import Notification, notify_once

# postgres_url: the session's PostgreSQL server, from the tests.pg_fixtures plugin.


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'spool.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[Notification] = []
        self.fail_on = fail_on

    def deliver(self, notification: Notification) -> None:
        if notification.recipient == self.fail_on:
            self.fail_on = None
            raise ConnectionError("receiver down")
        self.sent.append(notification)


def ids() -> tuple[str, str]:
    uid = uuid.uuid4().hex[:8]
    return f"author-{uid}", f"post-{uid}"


def test_a_post_is_counted_once_across_retries_and_edits(engine):
    author, post = ids()
    first = record(engine, author_id=author, post_id=post, version=1, title="v1", tags=[],
                   published_at=None)
    retry = record(engine, author_id=author, post_id=post, version=1, title="v1", tags=[],
                   published_at=None)
    edit = record(engine, author_id=author, post_id=post, version=2, title="v2", tags=["x"],
                  published_at=None)
    late = record(engine, author_id=author, post_id=post, version=1, title="v1 late", tags=[],
                  published_at=None)
    assert [first.counted, retry.counted, edit.counted, late.counted] == [
        True, False, False, False]
    assert author_post_count(engine, author) == 1
    stored = get_post(engine, post)
    assert (stored["version"], stored["title"], stored["tags"]) == (2, "v2", ["x"])


def test_concurrent_attempts_count_once(engine):
    author, post = ids()
    errors: list[BaseException] = []

    def attempt():
        try:
            record(engine, author_id=author, post_id=post, version=1, title="t", tags=[],
                   published_at=None)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Losing a race may raise (and the activity retries); it must never double count.
    assert author_post_count(engine, author) == 1
    record(engine, author_id=author, post_id=post, version=1, title="t", tags=[],
           published_at=None)
    assert author_post_count(engine, author) == 1


def test_notifications_are_created_and_delivered_once_per_recipient(engine):
    event = f"evt-{uuid.uuid4().hex[:8]}"
    recorder = Recorder(fail_on="c")
    kwargs = dict(event_id=event, event_type="post.published", recipients=["a", "b", "c", "a"],
                  payload={"k": 1})
    with pytest.raises(ConnectionError):
        notify_once(engine, recorder, **kwargs)
    assert [n.recipient for n in recorder.sent] == ["a", "b"]
    outcome = notify_once(engine, recorder, **kwargs)  # the activity's retry
    assert [n.recipient for n in recorder.sent] == ["a", "b", "c"]
    assert outcome.newly_created == 0 and outcome.delivered == 1
    assert notify_once(engine, recorder, **kwargs).delivered == 0
    assert {n.key for n in recorder.sent} == {f"{event}:a", f"{event}:b", f"{event}:c"}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(notifications.c.recipient, notifications.c.attempts)
                            .where(notifications.c.event_id == event)).all()
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
