"""A post's announcement to every follower, one keyset page at a time.

The audience never passes through one attempt's memory or one workflow payload: followers
are read ``page_size`` at a time in id order (spool/db/followers.py), each page recorded in
the notification ledger (one row per (event, recipient), spool/notify.py) and delivered,
then the page's last id is heartbeated as the cursor. A retried attempt reads the cursor
from its heartbeat details and goes on from the page after it; a page delivered but not yet
heartbeated is walked again and finds its rows delivered, so nothing goes out twice under
two keys. A follower added during the walk is in it when its id is past the cursor, and
not otherwise; never twice, since its ledger row is unique.

The workflow's history does not grow with the audience: the whole walk is one activity,
and heartbeat details are not history events. A walk longer than the activity's
start-to-close timeout is cut and retried from its cursor like any other attempt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.exceptions import CancelledError

from spool.db.followers import follower_count, iter_follower_pages
from spool.db.notifications import (
    delivery_key,
    insert_rows,
    mark_rows,
    pending_among,
    pending_in_range,
)
from spool.notify import Notification, Notifier, _mark_delivered, _send_batch

# Followers read, recorded and delivered together: memory is bounded by one page.
PAGE_SIZE = 5_000
# Deliveries marked per commit: a crash re-sends at most this many, under the same keys.
MARK_BATCH = 100
# Within a page (a slow receiver), a heartbeat at most once a second: far inside
# notify_followers' 15 s heartbeat timeout. The SDK sends heartbeats to the server throttled
# anyway, so the cursor is handed over after every page.
HEARTBEAT_SECONDS = 1.0


@dataclass
class Cursor:
    """How far a fan-out got: every follower up to ``after`` has a ledger row and was
    delivered (or refused for good). Heartbeated as a dict."""

    after: str | None = None
    walked: int = 0  # followers gone through
    created: int = 0  # ledger rows this event's walk made
    total: int = 0  # followers when the fan-out began (for the percent only)

    def details(self) -> dict[str, Any]:
        percent = 0.0 if not self.total else min(100.0, 100.0 * self.walked / self.total)
        return {
            "after": self.after,
            "walked": self.walked,
            "created": self.created,
            "total": self.total,
            "percent": round(percent, 1),
        }

    @classmethod
    def from_details(cls, details: Sequence[Any]) -> Cursor | None:
        """The cursor an earlier attempt heartbeated, or None."""
        last = details[-1] if details else None
        if not isinstance(last, dict) or "walked" not in last:
            return None
        return cls(
            after=last.get("after"),
            walked=int(last.get("walked") or 0),
            created=int(last.get("created") or 0),
            total=int(last.get("total") or 0),
        )


class Heartbeat:
    """Passes the cursor on at once, then at most once per ``every`` seconds, or whenever
    forced (a page done: the cursor moved)."""

    def __init__(
        self,
        beat: Callable[[dict[str, Any]], object],
        every: float = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.beat, self.every, self.clock = beat, every, clock
        self.last: float | None = None

    def __call__(self, cursor: Cursor, force: bool = False) -> None:
        now = self.clock()
        if force or self.last is None or now - self.last >= self.every:
            self.last = now
            self.beat(cursor.details())


@dataclass
class FanOutHooks:
    """What the fan-out needs from the activity running it: its heartbeat, the details an
    earlier attempt heartbeated, and whether it is cancelled."""

    beat: Callable[[dict[str, Any]], object] = lambda details: None
    resumed_from: Sequence[Any] = ()
    cancelled: Callable[[], bool] = lambda: False


class FanOutCancelled(CancelledError):
    """The job was cancelled: the fan-out stopped between pages (a CancelledError, so the
    activity ends cancelled rather than failed and retried)."""


@dataclass
class FanOutOutcome:
    recipients: int
    newly_created: int
    cursor: Cursor = field(default_factory=Cursor)


@dataclass
class Event:
    event_id: str
    event_type: str
    payload: dict[str, Any]


def _stored_payload(value: Any) -> dict[str, Any]:
    """A payload as the driver returns it: JSON text from SQLite, decoded from PostgreSQL."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _record_page(
    engine: Engine, event: Event, page: list[str], in_id_order: bool
) -> tuple[int, list[tuple]]:
    """In one transaction: a ledger row per new (event, recipient) of ``page``, the page's
    undelivered rows in the page's order, and the first batch's attempt counted. Returns
    (rows created, pending rows). ``in_id_order``: the page is in the database's order
    (a follower page), so its first and last ids bound it."""
    wanted = set(page)
    with engine.begin() as conn:
        # Rows first: the write lock is taken before anything is read (no SQLite snapshot
        # to upgrade, which a concurrent writer would refuse).
        created = set(
            insert_rows(conn, event.event_id, event.event_type, json.dumps(event.payload), page)
        )
        # A follower page: a range of the primary key, not an IN list of thousands, bounded
        # by the page's own ends (the database's collation, which Python's min() may not
        # share); rows in it that are not the page's are left alone. A row made just now
        # carries the event's payload; one an earlier attempt made, its own.
        rows = (
            pending_in_range(conn, event.event_id, page[0], page[-1])
            if in_id_order
            else pending_among(conn, event.event_id, page)
        )
        found = {
            recipient: event.payload if recipient in created else _stored_payload(payload)
            for recipient, payload in rows
            if recipient in wanted
        }
        pending = [(recipient, found[recipient]) for recipient in page if recipient in found]
        mark_rows(conn, event.event_id, [], [r for r, _ in pending[:MARK_BATCH]])
    return len(created), pending


def _send(
    notifier: Notifier,
    event: Event,
    batch: list[tuple],
    sent: list[str],
    on_delivery: Callable[[int], object] | None,
    refused: list[tuple[str, str]],
) -> None:
    """Deliver one mark batch, adding to ``sent`` what went out and to ``refused`` what was
    refused for good. A notifier that delivers a batch at once (the log's outbox, opened
    once) does; any other, one at a time."""
    deliver_batch = getattr(notifier, "deliver_batch", None)
    if deliver_batch is None:
        _send_batch(
            notifier, event.event_id, event.event_type, batch, sent, on_delivery, 0, refused
        )
        return
    deliver_batch(
        [
            Notification(
                key=delivery_key(event.event_id, recipient),
                event_id=event.event_id,
                event_type=event.event_type,
                recipient=recipient,
                payload=payload,
            )
            for recipient, payload in batch
        ]
    )
    sent.extend(recipient for recipient, _ in batch)
    if on_delivery is not None:
        on_delivery(len(sent))


def deliver_page(
    engine: Engine,
    notifier: Notifier,
    event: Event,
    page: list[str],
    on_delivery: Callable[[int], object] | None = None,
    in_id_order: bool = False,
) -> int:
    """Record and deliver one page of recipients, marking every ``MARK_BATCH``; the number
    of ledger rows made. What went out is marked even when a later delivery fails."""
    if not page:
        return 0
    created, pending = _record_page(engine, event, page, in_id_order)
    batches = [pending[i : i + MARK_BATCH] for i in range(0, len(pending), MARK_BATCH)]
    for number, batch in enumerate(batches):
        sent: list[str] = []
        refused: list[tuple[str, str]] = []
        try:
            _send(notifier, event, batch, sent, on_delivery, refused)
        except BaseException:
            if sent or refused:
                _mark_delivered(engine, event.event_id, sent, refused=refused, marks=mark_rows)
            raise
        following = batches[number + 1] if number + 1 < len(batches) else []
        _mark_delivered(
            engine,
            event.event_id,
            sent,
            attempting=[r for r, _ in following],
            refused=refused,
            marks=mark_rows,
        )
    return created


def _beat(heartbeat: Heartbeat, cursor: Cursor, _delivered: int) -> None:
    """Within a page: the cursor of the page before, at most once a second."""
    heartbeat(cursor)


def starting_cursor(engine: Engine, author_id: str, hooks: FanOutHooks) -> Cursor:
    """Where a fan-out starts: the cursor an earlier attempt heartbeated, or the beginning
    with the audience counted (after a first heartbeat: the timeout counts from the
    attempt's start, and counting a large audience takes a moment)."""
    resumed = Cursor.from_details(hooks.resumed_from)
    if resumed is not None:
        return resumed
    cursor = Cursor()
    hooks.beat(cursor.details())
    cursor.total = follower_count(engine, author_id)
    return cursor


def fan_out_to_followers(
    engine: Engine,
    notifier: Notifier,
    event: Event,
    author_id: str,
    hooks: FanOutHooks,
    page_size: int = PAGE_SIZE,
) -> FanOutOutcome:
    """Announce ``event`` to every follower of ``author_id``, then to the notifier's webhook
    destinations; resumable from the cursor in ``hooks.resumed_from``."""
    resumed = Cursor.from_details(hooks.resumed_from)
    cursor = resumed or Cursor()
    heartbeat = Heartbeat(hooks.beat)
    heartbeat(cursor)  # at once: the timeout counts from the attempt's start
    if resumed is None:
        # For the percent only; counting a large audience takes a moment, after the beat.
        cursor.total = follower_count(engine, author_id)
    for page in iter_follower_pages(engine, author_id, cursor.after, page_size):
        if hooks.cancelled():
            raise FanOutCancelled(f"{event.event_id}: cancelled after {cursor.walked} followers")
        created = deliver_page(
            engine, notifier, event, page, partial(_beat, heartbeat, cursor), in_id_order=True
        )
        cursor = Cursor(
            after=page[-1],
            walked=cursor.walked + len(page),
            created=cursor.created + created,
            total=max(cursor.total, cursor.walked + len(page)),
        )
        heartbeat(cursor, force=True)
    destinations = notifier.destinations(None)
    created = deliver_page(engine, notifier, event, destinations, partial(_beat, heartbeat, cursor))
    hooks.beat(cursor.details())
    return FanOutOutcome(
        recipients=cursor.walked + len(destinations),
        newly_created=cursor.created + created,
        cursor=cursor,
    )
