"""Notifiers deliver one notification; the ledger in spool.db.notifications makes it once.

Delivery is at-least-once with a stable key (``Notification.key``): a crash between sending and
marking delivered re-sends with the same key, which receivers use to deduplicate.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from spool.config import Settings
from spool.db import insert_ignore
from spool.db.notifications import delivery_key, notifications

log = logging.getLogger("spool.notify")
T = TypeVar("T")


@dataclass
class Notification:
    key: str
    event_id: str
    event_type: str
    recipient: str
    payload: dict[str, Any]


class Notifier(Protocol):
    """Delivers one notification, and names the webhook destinations every event also goes
    to (none for a notifier without webhooks)."""

    def deliver(self, notification: Notification) -> None: ...

    def destinations(self, callback_url: str | None) -> list[str]: ...


class LogNotifier:
    """Writes each notification to the log and appends it to a JSON-lines outbox file."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self._lock = threading.Lock()

    def destinations(self, callback_url: str | None) -> list[str]:
        return []  # the log has no webhook destinations; a callback is not a person

    def deliver(self, notification: Notification) -> None:
        # vars, not asdict: the record is only serialised, so asdict's deep copy of the
        # payload was wasted on every notification.
        line = (
            json.dumps({"delivered_at": datetime.now(UTC).isoformat(), **vars(notification)}) + "\n"
        )
        log.info(
            "notify %s -> %s (%s)",
            notification.event_type,
            notification.recipient,
            notification.key,
        )
        with self._lock, self._open_outbox() as fh:
            fh.write(line)

    def _open_outbox(self):
        """The outbox for appending; its folder is made the first time, or again if removed
        (rather than asked for on every notification)."""
        try:
            return self.outbox.open("a", encoding="utf-8")
        except FileNotFoundError:
            self.outbox.parent.mkdir(parents=True, exist_ok=True)
            return self.outbox.open("a", encoding="utf-8")


class WebhookNotifier:
    """Signed Standard Webhooks POSTs for URL recipients; every other recipient goes to the log.

    ``destinations`` adds the configured subscribers and the job's ``callback_url`` to the
    recipients of every event, so each (event, URL) gets its own ledger row and is delivered
    once, with ``webhook-id`` derived from that row's key: retries of the activity that calls
    notify_once re-send under the same id. A receiver error raises (the activity retries); a
    destination refused by the address guard is logged and never retried.
    """

    def __init__(self, settings: Settings, fallback: Notifier) -> None:
        self.settings = settings
        self.fallback = fallback

    def destinations(self, callback_url: str | None) -> list[str]:
        from spool.webhooks import destinations

        return destinations(self.settings, callback_url)

    def deliver(self, notification: Notification) -> None:
        from spool import webhooks

        if not webhooks.is_webhook_url(notification.recipient):
            self.fallback.deliver(notification)
            return
        delivery = webhooks.Delivery(
            url=notification.recipient,
            msg_id=webhooks.webhook_id(notification.key),
            event_type=notification.event_type,
            payload=notification.payload,
        )
        shown = webhooks.shown_url(notification.recipient)  # the path may hold a token
        try:
            webhooks.send(self.settings, delivery)
        except webhooks.WebhookRefused as exc:
            log.warning("webhook %s to %s refused: %s", notification.event_type, shown, exc)
            return
        log.info("webhook %s -> %s (%s)", notification.event_type, shown, delivery.msg_id)


class DeliveryPool:
    """Where async activities run ``notify_once``: threads of their own, made on first use.

    A delivery may take up to ``webhook_deadline_seconds`` per destination; run on the event
    loop's default executor (``asyncio.to_thread``), receivers that hold their answers would
    take the threads every storage, database and probe call of the worker needs. Here they
    can hold at most ``threads`` threads, and the rest of the worker goes on."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="delivery")
            return self._executor

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a delivery thread, in this task's context (log fields)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool(), call)


def make_notifier(settings: Settings) -> Notifier:
    log_notifier = LogNotifier(settings.resolved_notify_outbox)
    if settings.notifier == "log":
        return log_notifier
    if settings.notifier == "webhook":
        return WebhookNotifier(settings, log_notifier)
    raise ValueError(
        f"unknown notifier {settings.notifier!r} (SPOOL_NOTIFIER); known: log, webhook"
    )


_MARK_BATCH = 50
# How long marking what went out waits out a database that is briefly unreachable (a restart,
# a failover): giving up there makes the activity's retry re-send those notifications.
MARK_OUTAGE_SECONDS = 60.0


def _for_recipients():
    """UPDATE of one event's rows for some of its recipients, both bound when executed
    (``event``, ``recipients``)."""
    return notifications.update().where(
        notifications.c.event_id == sa.bindparam("event"),
        notifications.c.recipient.in_(sa.bindparam("recipients", expanding=True)),
    )


# Built once: building SQLAlchemy statements cost more CPU than running them, and a fan-out
# runs on every publish.
_ONE_MORE_ATTEMPT = _for_recipients().values(attempts=notifications.c.attempts + 1)
_DELIVERED = _for_recipients().values(delivered_at=sa.func.now())
_PENDING = sa.select(notifications.c.recipient, notifications.c.payload).where(
    notifications.c.event_id == sa.bindparam("event"), notifications.c.delivered_at.is_(None)
)


@functools.cache
def _new_rows(dialect: str) -> Any:
    """INSERT of ledger rows that skips existing ones, RETURNING the rows it made; built once
    per dialect."""
    return insert_ignore(dialect, notifications).returning(notifications.c.recipient)


def _count_attempt(conn, event_id: str, recipients: list[str]) -> None:
    """One more delivery attempt for ``recipients``, recorded before they are sent."""
    if recipients:
        conn.execute(_ONE_MORE_ATTEMPT, {"event": event_id, "recipients": recipients})


def _mark_delivered(
    engine: Engine,
    event_id: str,
    sent: list[str],
    on_wait: Any = None,
    wait_seconds: float = MARK_OUTAGE_SECONDS,
    attempting: list[str] | None = None,
) -> None:
    """Mark ``sent`` delivered, retrying while the database is unreachable: these went out,
    and a retry of the whole activity would deliver them a second time. ``on_wait`` is
    called between tries, so an activity keeps heartbeating while it waits.

    ``attempting`` (the next batch) has its attempt counted in the same transaction: one
    commit per batch instead of two."""
    deadline = time.monotonic() + wait_seconds
    pause = 0.2
    while True:
        try:
            with engine.begin() as conn:
                conn.execute(_DELIVERED, {"event": event_id, "recipients": sent})
                _count_attempt(conn, event_id, attempting or [])
            return
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning(
                "marking %d notifications of %s delivered: database unavailable (%s); retrying",
                len(sent),
                event_id,
                exc.orig or exc,
            )
        if on_wait is not None:
            on_wait()
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def _record_and_take_pending(
    engine: Engine,
    *,
    event_id: str,
    event_type: str,
    recipients: list[str],
    payload: dict[str, Any],
) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """In one transaction: a row per new (event, recipient), the event's undelivered rows
    (recipient, payload), and the first batch's attempt counted. Returns (rows created,
    pending rows)."""
    with engine.begin() as conn:
        created = 0
        if recipients:
            created = len(
                conn.execute(
                    _new_rows(conn.dialect.name),
                    [
                        {
                            "event_id": event_id,
                            "recipient": r,
                            "event_type": event_type,
                            "payload": payload,
                        }
                        for r in recipients
                    ],
                ).all()
            )
        # In the order asked for (people before webhook destinations), whatever order the
        # database returns its rows in; rows of recipients no longer asked for go last.
        rank = {recipient: i for i, recipient in enumerate(recipients)}
        pending = sorted(
            (
                (recipient, row_payload)
                for recipient, row_payload in conn.execute(_PENDING, {"event": event_id})
            ),
            key=lambda row: (rank.get(row[0], len(rank)), row[0]),
        )
        _count_attempt(conn, event_id, [r for r, _ in pending[:_MARK_BATCH]])
    return created, pending


@dataclass
class NotifyOutcome:
    recipients: int
    newly_created: int
    delivered: int


def _send_batch(
    notifier: Notifier,
    event_id: str,
    event_type: str,
    batch: list[tuple[str, dict[str, Any]]],
    sent: list[str],
    on_progress: Any,
    delivered_before: int,
) -> None:
    """Deliver one batch of ledger rows in order, adding each recipient to ``sent`` as soon
    as its delivery returned (the caller marks ``sent`` even when a later one fails)."""
    for recipient, row_payload in batch:
        notifier.deliver(
            Notification(
                key=delivery_key(event_id, recipient),
                event_id=event_id,
                event_type=event_type,
                recipient=recipient,
                payload=row_payload,
            )
        )
        sent.append(recipient)
        if on_progress is not None:
            on_progress(delivered_before + len(sent))


def notify_once(
    engine: Engine,
    notifier: Notifier,
    *,
    event_id: str,
    event_type: str,
    recipients: list[str],
    payload: dict[str, Any],
    callback_url: str | None = None,
    on_progress: Any = None,
) -> NotifyOutcome:
    """Record one row per (event, recipient) and deliver each row not yet delivered.

    Besides ``recipients`` (people), the event goes to the notifier's webhook destinations:
    the configured subscribers and the job's ``callback_url``.

    Safe to call again after any failure: rows already present are not duplicated, and rows
    already delivered are not delivered again.
    """
    unique = list(dict.fromkeys(recipients))
    # Webhook destinations after people: a slow receiver never delays a person's notice.
    unique += [url for url in notifier.destinations(callback_url) if url not in unique]
    created, pending = _record_and_take_pending(
        engine, event_id=event_id, event_type=event_type, recipients=unique, payload=payload
    )
    # Two commits for a fan-out of up to _MARK_BATCH rows: the ledger (with the first batch's
    # attempt) and, after sending, the marks (with the next batch's attempt).
    batches = [
        pending[start : start + _MARK_BATCH] for start in range(0, len(pending), _MARK_BATCH)
    ]
    delivered = 0

    def beat_at(count: int) -> Any:
        """What marking calls while it waits out the database: the progress so far."""
        return None if on_progress is None else partial(on_progress, count)

    for number, batch in enumerate(batches):
        sent: list[str] = []
        try:
            _send_batch(notifier, event_id, event_type, batch, sent, on_progress, delivered)
        except BaseException:
            # Even when a delivery fails, what went out is marked, so a retry re-sends only
            # the rest. A crash before the marks commit re-sends the batch under the same
            # keys, which receivers deduplicate.
            if sent:
                _mark_delivered(engine, event_id, sent, on_wait=beat_at(delivered + len(sent)))
            raise
        following = batches[number + 1] if number + 1 < len(batches) else []
        _mark_delivered(
            engine,
            event_id,
            sent,
            on_wait=beat_at(delivered + len(sent)),
            attempting=[r for r, _ in following],
        )
        delivered += len(sent)
    return NotifyOutcome(recipients=len(unique), newly_created=created, delivered=delivered)
