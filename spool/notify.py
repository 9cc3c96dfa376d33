"""Notifiers deliver one notification; the ledger in spool.db.notifications makes it once.

Delivery is at-least-once with a stable key (``Notification.key``): a crash between sending and
marking delivered re-sends with the same key, which receivers use to deduplicate.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from spool.config import Settings
from spool.db.notifications import (
    DELIVERED,
    FAILED,
    count_attempt,
    delivery_key,
    new_rows,
    notifications,
)

log = logging.getLogger("spool.notify")
T = TypeVar("T")


class DeliveryRefused(Exception):
    """The receiver refused this notification for good (an SMTP 5xx, a malformed address,
    a recipient who opted out): recorded on its ledger row and never tried again."""


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
        self.deliver_batch([notification])

    def deliver_batch(self, batch: list[Notification]) -> None:
        """Every notification of ``batch``, the outbox opened once (a fan-out's pages)."""
        lines = []
        # One time for the batch: it is written at once.
        now = datetime.now(UTC).isoformat()
        for notification in batch:
            # vars, not asdict: the record is only serialised, so asdict's deep copy of the
            # payload was wasted on every notification.
            record = {"delivered_at": now, **vars(notification)}
            lines.append(json.dumps(record) + "\n")
            log.info(
                "notify %s -> %s (%s)",
                notification.event_type,
                notification.recipient,
                notification.key,
            )
        with self._lock, self._open_outbox() as fh:
            fh.writelines(lines)

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


KNOWN_NOTIFIERS = ("log", "webhook", "email")


def make_notifier(settings: Settings) -> Notifier:
    """The notifiers SPOOL_NOTIFIER names, chained: webhooks take URL recipients, email
    takes addresses, and the log whatever is left (and everything, when alone)."""
    kinds = settings.notifier_kinds
    unknown = sorted(kinds - set(KNOWN_NOTIFIERS))
    if unknown or not kinds:
        raise ValueError(
            f"unknown notifier {settings.notifier!r} (SPOOL_NOTIFIER); known: "
            f"{', '.join(KNOWN_NOTIFIERS)}, or several with commas"
        )
    notifier: Notifier = LogNotifier(settings.resolved_notify_outbox)
    if "email" in kinds:
        from spool.email import EmailNotifier

        notifier = EmailNotifier(settings, notifier)
    if "webhook" in kinds:
        notifier = WebhookNotifier(settings, notifier)
    return notifier


_MARK_BATCH = 50
# How long marking what went out waits out a database that is briefly unreachable (a restart,
# a failover): giving up there makes the activity's retry re-send those notifications.
MARK_OUTAGE_SECONDS = 60.0


_PENDING = sa.select(notifications.c.recipient, notifications.c.payload).where(
    notifications.c.event_id == sa.bindparam("event"),
    notifications.c.delivered_at.is_(None),
    notifications.c.failed_at.is_(None),
)


def _mark_delivered(
    engine: Engine,
    event_id: str,
    sent: list[str],
    on_wait: Any = None,
    wait_seconds: float = MARK_OUTAGE_SECONDS,
    attempting: list[str] | None = None,
    refused: list[tuple[str, str]] | None = None,
    marks: Callable[[Any, str, list[str], list[str]], None] | None = None,
) -> None:
    """Mark ``sent`` delivered, retrying while the database is unreachable: these went out,
    and a retry of the whole activity would deliver them a second time. ``on_wait`` is
    called between tries, so an activity keeps heartbeating while it waits.

    ``attempting`` (the next batch) has its attempt counted in the same transaction: one
    commit per batch instead of two. ``refused`` (recipient, why) are recorded failed.
    ``marks`` (conn, event, sent, attempting) writes both its own way (a fan-out's)."""
    deadline = time.monotonic() + wait_seconds
    pause = 0.2
    while True:
        try:
            with engine.begin() as conn:
                if marks is not None:
                    marks(conn, event_id, sent, attempting or [])
                else:
                    if sent:
                        conn.execute(DELIVERED, {"event": event_id, "recipients": sent})
                    count_attempt(conn, event_id, attempting or [])
                for recipient, why in refused or []:
                    conn.execute(FAILED, {"event": event_id, "who": recipient, "why": why})
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
                    new_rows(conn.dialect.name),
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
        count_attempt(conn, event_id, [r for r, _ in pending[:_MARK_BATCH]])
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
    refused: list[tuple[str, str]] | None = None,
) -> None:
    """Deliver one batch of ledger rows in order, adding each recipient to ``sent`` as soon
    as its delivery returned, or to ``refused`` with the reason when it was refused for
    good (the caller marks both even when a later one fails)."""
    for recipient, row_payload in batch:
        try:
            notifier.deliver(
                Notification(
                    key=delivery_key(event_id, recipient),
                    event_id=event_id,
                    event_type=event_type,
                    recipient=recipient,
                    payload=row_payload,
                )
            )
        except DeliveryRefused as exc:
            log.warning("%s to %s refused for good: %s", event_type, recipient, exc)
            if refused is None:
                raise
            refused.append((recipient, str(exc)[:500]))
            continue
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
    for number, batch in enumerate(batches):
        following = batches[number + 1] if number + 1 < len(batches) else []
        delivered += _deliver_and_mark(
            engine,
            notifier,
            (event_id, event_type),
            batch,
            [r for r, _ in following],
            on_progress,
            delivered,
        )
    return NotifyOutcome(recipients=len(unique), newly_created=created, delivered=delivered)


def _deliver_and_mark(
    engine: Engine,
    notifier: Notifier,
    event: tuple[str, str],
    batch: list[tuple[str, dict[str, Any]]],
    following: list[str],
    on_progress: Any,
    delivered_before: int,
) -> int:
    """Deliver one batch and mark it, with the ``following`` batch's attempt counted in the
    same commit; the number delivered. ``event`` is (event_id, event_type)."""
    event_id, event_type = event
    sent: list[str] = []
    refused: list[tuple[str, str]] = []

    def beat() -> Any:
        """What marking calls while it waits out the database: the progress so far."""
        return None if on_progress is None else partial(on_progress, delivered_before + len(sent))

    try:
        _send_batch(
            notifier, event_id, event_type, batch, sent, on_progress, delivered_before, refused
        )
    except BaseException:
        # Even when a delivery fails, what went out is marked, so a retry re-sends only the
        # rest. A crash before the marks commit re-sends the batch under the same keys, which
        # receivers deduplicate.
        if sent or refused:
            _mark_delivered(engine, event_id, sent, on_wait=beat(), refused=refused)
        raise
    _mark_delivered(engine, event_id, sent, on_wait=beat(), attempting=following, refused=refused)
    return len(sent)
