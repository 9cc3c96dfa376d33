"""The paged fan-out to an author's followers, on both supported databases.

What it must keep whatever the audience: one page in memory at a time, a heartbeat at once
and then with the cursor, a retried attempt going on from its cursor, each follower once
(a follower added during the walk in it or not, never twice), and a cancel stopping it.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from spool import fanout
from spool.db.followers import follow, import_follows
from spool.db.notifications import notifications
from spool.fanout import Cursor, Event, FanOutCancelled, FanOutHooks, Heartbeat
from spool.notify import Notification
from tests.support.notifiers import Recorder

pytestmark = pytest.mark.unit

# engine (each test on SQLite and on PostgreSQL): from the tests.support.pg_fixtures plugin.


class Crash(BaseException):
    """The worker dying: nothing after it runs."""


class CrashAt(Recorder):
    """Delivers until the ``n``-th delivery, which kills the attempt."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def deliver(self, notification: Notification) -> None:
        if len(self.sent) + 1 == self.n:
            raise Crash()
        super().deliver(notification)


def new_author(engine, count: int) -> tuple[str, list[str]]:
    author = f"author-{uuid.uuid4().hex[:8]}"
    people = [f"f{i:04d}" for i in range(count)]
    import_follows(engine, ((author, f) for f in people))
    return author, people


def event_for(author: str) -> Event:
    return Event(event_id=f"post-published:{author}", event_type="post.published", payload={})


def delivered(engine, event: Event) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                sa.select(notifications.c.recipient).where(
                    notifications.c.event_id == event.event_id,
                    notifications.c.delivered_at.is_not(None),
                )
            ).scalars()
        )


def test_every_follower_is_notified_once_a_page_at_a_time(engine, monkeypatch):
    author, people = new_author(engine, 12)
    pages: list[int] = []
    real = fanout._record_page
    monkeypatch.setattr(
        fanout,
        "_record_page",
        lambda e, ev, page, ordered: pages.append(len(page)) or real(e, ev, page, ordered),
    )
    beats: list[dict] = []
    sink = Recorder()
    outcome = fanout.fan_out_to_followers(
        engine, sink, event_for(author), author, FanOutHooks(beat=beats.append), page_size=5
    )
    assert pages == [5, 5, 2]  # never more than a page in one transaction, or in memory
    assert [n.recipient for n in sink.sent] == people
    assert (outcome.recipients, outcome.newly_created) == (12, 12)
    # A heartbeat before the first page (the timeout counts from the attempt's start) ...
    assert beats[0] == {"after": None, "walked": 0, "created": 0, "total": 0, "percent": 0.0}
    assert beats[1]["total"] == 12 and beats[1]["percent"] == pytest.approx(41.7)
    # ... and the last one says where the walk ended.
    assert beats[-1]["after"] == "f0011" and beats[-1]["percent"] == 100.0
    again = Recorder()
    repeat = fanout.fan_out_to_followers(
        engine, again, event_for(author), author, FanOutHooks(), page_size=5
    )
    assert again.sent == [] and repeat.newly_created == 0


def test_a_retried_attempt_goes_on_from_its_heartbeated_page(engine):
    author, people = new_author(engine, 12)
    event = event_for(author)
    beats: list[dict] = []
    first = CrashAt(8)  # in the second page
    with pytest.raises(Crash):
        fanout.fan_out_to_followers(
            engine, first, event, author, FanOutHooks(beat=beats.append), page_size=5
        )
    cursor = Cursor.from_details([beats[-1]])
    assert cursor is not None and cursor.after == "f0004"  # the first page is done
    retry = Recorder()
    fanout.fan_out_to_followers(
        engine, retry, event, author, FanOutHooks(resumed_from=[beats[-1]]), page_size=5
    )
    # The first page is not read again; the second page's two sent before the crash were
    # marked, so only the rest go out.
    assert [n.recipient for n in retry.sent] == people[7:]
    assert sorted(n.recipient for n in first.sent + retry.sent) == people
    assert delivered(engine, event) == people


def test_a_crash_before_the_cursor_beat_resends_nothing_already_marked(engine):
    """An attempt that dies before heartbeating its last pages walks them again: their rows
    are found delivered and nothing goes out under a second key."""
    author, people = new_author(engine, 12)
    event = event_for(author)
    first = CrashAt(11)
    with pytest.raises(Crash):
        fanout.fan_out_to_followers(engine, first, event, author, FanOutHooks(), page_size=5)
    retry = Recorder()
    fanout.fan_out_to_followers(engine, retry, event, author, FanOutHooks(), page_size=5)
    assert [n.recipient for n in retry.sent] == people[10:]


def test_a_follower_added_during_the_walk_is_in_it_or_not_never_twice(engine):
    author, people = new_author(engine, 10)
    event = event_for(author)

    class AddsFollowers(Recorder):
        def deliver(self, notification: Notification) -> None:
            if notification.recipient == "f0002":
                follow(engine, author, "f0000a")  # behind the cursor: not in this walk
                follow(engine, author, "f9999")  # ahead of it: in this walk
            super().deliver(notification)

    sink = AddsFollowers()
    fanout.fan_out_to_followers(engine, sink, event, author, FanOutHooks(), page_size=4)
    assert [n.recipient for n in sink.sent] == [*people, "f9999"]
    # A walk again from the start (a retry that lost its cursor) adds only the one left out.
    again = Recorder()
    fanout.fan_out_to_followers(engine, again, event, author, FanOutHooks(), page_size=4)
    assert [n.recipient for n in again.sent] == ["f0000a"]
    assert delivered(engine, event) == sorted([*people, "f0000a", "f9999"])


def test_a_cancel_stops_the_fan_out_between_pages(engine):
    author, people = new_author(engine, 12)
    sink = Recorder()
    with pytest.raises(FanOutCancelled):
        fanout.fan_out_to_followers(
            engine,
            sink,
            event_for(author),
            author,
            FanOutHooks(cancelled=lambda: len(sink.sent) >= 5),
            page_size=5,
        )
    assert [n.recipient for n in sink.sent] == people[:5]


def test_webhook_destinations_go_after_every_follower(engine):
    author, people = new_author(engine, 3)

    class WithDestinations(Recorder):
        def destinations(self, callback_url: str | None) -> list[str]:
            return ["https://hooks.example/a"]

    sink = WithDestinations()
    outcome = fanout.fan_out_to_followers(
        engine, sink, event_for(author), author, FanOutHooks(), page_size=2
    )
    assert [n.recipient for n in sink.sent] == [*people, "https://hooks.example/a"]
    assert outcome.recipients == 4


def test_an_author_without_followers_announces_to_the_destinations_only(engine):
    sink = Recorder()
    outcome = fanout.fan_out_to_followers(
        engine, sink, event_for("nobody"), "nobody", FanOutHooks(), page_size=5
    )
    assert sink.sent == [] and outcome.recipients == 0


def test_the_heartbeat_goes_at_once_then_at_most_once_a_second():
    now = [10.0]
    beats: list[int] = []
    heartbeat = Heartbeat(lambda details: beats.append(details["walked"]), 1.0, lambda: now[0])
    for walked in range(12):
        heartbeat(Cursor(walked=walked, total=12))
        now[0] += 0.25
    assert beats == [0, 4, 8]
    heartbeat(Cursor(walked=12, total=12), force=True)  # a page done: always
    assert beats == [0, 4, 8, 12]
