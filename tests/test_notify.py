"""The notification ledger's transactions, on both supported databases.

A fan-out is on every publish's path, so it commits as few times as at-least-once delivery
allows: the ledger rows and the first batch's attempt together, then each batch's marks
together with the next batch's attempt. What must not change with it: a crash between
sending and marking re-sends under the same key, and every row counts its own attempts.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from spool import notify
from spool.db.notifications import notifications
from spool.notify import notify_once
from tests.support.notifiers import Recorder

pytestmark = pytest.mark.unit

# engine (each test on SQLite and on PostgreSQL): from the tests.support.pg_fixtures plugin.


class Crash(BaseException):
    """The worker dying: nothing after it runs, not even the code that marks what was sent."""


def transactions(engine) -> list[int]:
    """A list that counts every transaction the engine begins from now on."""
    begun: list[int] = []
    sa.event.listen(engine, "begin", lambda conn: begun.append(1))
    return begun


def attempts(engine, event: str) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(notifications.c.recipient, notifications.c.attempts).where(
                    notifications.c.event_id == event
                )
            ).all()
        )


def new_event() -> str:
    return f"evt-{uuid.uuid4().hex[:8]}"


def test_a_fan_out_of_one_batch_takes_two_transactions(engine):
    event = new_event()
    begun = transactions(engine)
    outcome = notify_once(
        engine,
        Recorder(),
        event_id=event,
        event_type="post.published",
        recipients=["f1", "f2", "f3"],
        payload={"post_id": "p"},
    )
    assert (outcome.newly_created, outcome.delivered) == (3, 3)
    assert len(begun) == 2  # the ledger with the attempt; the marks
    begun.clear()
    assert (
        notify_once(
            engine,
            Recorder(),
            event_id=event,
            event_type="post.published",
            recipients=["f1", "f2", "f3"],
            payload={"post_id": "p"},
        ).delivered
        == 0
    )
    assert len(begun) == 1  # a repeat finds nothing pending: nothing to mark
    assert attempts(engine, event) == {"f1": 1, "f2": 1, "f3": 1}


def test_a_crash_between_sending_and_marking_resends_under_the_same_keys(engine, monkeypatch):
    event = new_event()
    first = Recorder()

    def crash(*args, **kwargs):
        raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(notify, "_mark_delivered", crash)
        with pytest.raises(Crash):
            notify_once(
                engine, first, event_id=event, event_type="t", recipients=["a", "b"], payload={}
            )
    assert [n.recipient for n in first.sent] == ["a", "b"]
    retry = Recorder()
    outcome = notify_once(
        engine, retry, event_id=event, event_type="t", recipients=["a", "b"], payload={}
    )
    assert (outcome.newly_created, outcome.delivered) == (0, 2)
    assert (
        sorted(n.key for n in retry.sent)
        == sorted(n.key for n in first.sent)
        == [f"{event}:a", f"{event}:b"]
    )
    assert attempts(engine, event) == {"a": 2, "b": 2}
    assert (
        notify_once(
            engine, Recorder(), event_id=event, event_type="t", recipients=["a", "b"], payload={}
        ).delivered
        == 0
    )


def test_each_batch_counts_its_attempt_only_when_it_is_attempted(engine):
    event = new_event()
    people = [f"r{i:03d}" for i in range(120)]  # three batches of at most 50
    down = Recorder(fail_on="r010")
    with pytest.raises(ConnectionError):
        notify_once(engine, down, event_id=event, event_type="t", recipients=people, payload={})
    counted = attempts(engine, event)
    # The first batch was attempted (its first ten went out and are marked); the other two
    # batches were never reached, so they count no attempt.
    assert {r: counted[r] for r in people[:50]} == dict.fromkeys(people[:50], 1)
    assert {r: counted[r] for r in people[50:]} == dict.fromkeys(people[50:], 0)
    retry = Recorder()
    assert (
        notify_once(
            engine, retry, event_id=event, event_type="t", recipients=people, payload={}
        ).delivered
        == 110
    )
    assert sorted(n.recipient for n in down.sent + retry.sent) == people  # each once
    assert attempts(engine, event) == {
        **dict.fromkeys(people[:10], 1),
        **dict.fromkeys(people[10:50], 2),
        **dict.fromkeys(people[50:], 1),
    }


def test_a_batch_that_fails_midway_marks_what_went_out_in_one_transaction(engine):
    event = new_event()
    begun = transactions(engine)
    with pytest.raises(ConnectionError):
        notify_once(
            engine,
            Recorder(fail_on="c"),
            event_id=event,
            event_type="t",
            recipients=["a", "b", "c", "d"],
            payload={},
        )
    assert len(begun) == 2  # the ledger with the attempt; the marks of a and b
    with engine.connect() as conn:
        marked = sorted(
            conn.execute(
                sa.select(notifications.c.recipient).where(
                    notifications.c.event_id == event, notifications.c.delivered_at.is_not(None)
                )
            ).scalars()
        )
    assert marked == ["a", "b"]


def test_the_log_notifier_appends_a_line_per_notification_making_its_folder(tmp_path):
    import json
    import shutil

    from spool.notify import LogNotifier, Notification

    outbox = tmp_path / "var" / "outbox.jsonl"
    notifier = LogNotifier(outbox)
    payload = {"post_id": "p", "tags": ["a"]}

    def send(recipient: str) -> None:
        notifier.deliver(
            Notification(
                key=f"e:{recipient}",
                event_id="e",
                event_type="t",
                recipient=recipient,
                payload=payload,
            )
        )

    def written() -> list[dict]:
        records = [json.loads(line) for line in outbox.read_text().splitlines()]
        assert all(r.pop("delivered_at") for r in records)
        return records

    def record(recipient: str) -> dict:
        return {
            "key": f"e:{recipient}",
            "event_id": "e",
            "event_type": "t",
            "recipient": recipient,
            "payload": {"post_id": "p", "tags": ["a"]},
        }

    send("a")
    send("b")
    assert written() == [record("a"), record("b")]
    shutil.rmtree(outbox.parent)  # a cleaned-up data folder is made again, not an error
    send("c")
    assert written() == [record("c")]


def test_recipients_are_notified_in_the_order_asked_whatever_the_database_returns(engine):
    """People before webhook destinations, in the order given: a database returns the
    ledger's rows in its own order (SQLite by primary key: alphabetically)."""
    event = new_event()
    people = ["zed", "amy", "mia", "bob"]
    sent = Recorder()
    notify_once(engine, sent, event_id=event, event_type="t", recipients=people, payload={})
    assert [n.recipient for n in sent.sent] == people
    # A retry that lists them in another order delivers what is left in that order.
    event = new_event()
    with pytest.raises(ConnectionError):
        notify_once(
            engine,
            Recorder(fail_on="amy"),
            event_id=event,
            event_type="t",
            recipients=people,
            payload={},
        )  # zed went out, then amy failed
    retry = Recorder()
    notify_once(
        engine,
        retry,
        event_id=event,
        event_type="t",
        recipients=["bob", "mia", "amy", "zed"],
        payload={},
    )
    assert [n.recipient for n in retry.sent] == ["bob", "mia", "amy"]
