"""Notifiers deliver one notification; the ledger in spool.db.notifications makes it once.

Delivery is at-least-once with a stable key (``Notification.key``): a crash between sending and
marking delivered re-sends with the same key, which receivers use to deduplicate.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spool.config import Settings
from spool.db import insert_ignore
from spool.db.notifications import delivery_key, notifications

log = logging.getLogger("spool.notify")


@dataclass
class Notification:
    key: str
    event_id: str
    event_type: str
    recipient: str
    payload: dict[str, Any]


class Notifier(Protocol):
    def deliver(self, notification: Notification) -> None: ...


class LogNotifier:
    """Writes each notification to the log and appends it to a JSON-lines outbox file."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self._lock = threading.Lock()

    def deliver(self, notification: Notification) -> None:
        record = {"delivered_at": datetime.now(UTC).isoformat(), **asdict(notification)}
        log.info("notify %s -> %s (%s)", notification.event_type, notification.recipient,
                 notification.key)
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.outbox.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def make_notifier(settings: Settings) -> Notifier:
    if settings.notifier == "log":
        return LogNotifier(settings.resolved_notify_outbox)
    raise ValueError(f"unknown notifier {settings.notifier!r} (SPOOL_NOTIFIER); known: log")


@dataclass
class NotifyOutcome:
    recipients: int
    newly_created: int
    delivered: int


def notify_once(
    engine: Engine,
    notifier: Notifier,
    *,
    event_id: str,
    event_type: str,
    recipients: list[str],
    payload: dict[str, Any],
    on_progress: Any = None,
) -> NotifyOutcome:
    """Record one row per (event, recipient) and deliver each row not yet delivered.

    Safe to call again after any failure: rows already present are not duplicated, and rows
    already delivered are not delivered again.
    """
    unique = list(dict.fromkeys(recipients))
    created = 0
    if unique:
        with engine.begin() as conn:
            result = conn.execute(
                insert_ignore(conn, notifications),
                [{"event_id": event_id, "recipient": r, "event_type": event_type,
                  "payload": payload} for r in unique],
            )
            created = max(result.rowcount, 0)
    with engine.connect() as conn:
        pending = conn.execute(
            sa.select(notifications.c.recipient, notifications.c.payload).where(
                notifications.c.event_id == event_id, notifications.c.delivered_at.is_(None)
            )
        ).all()
    delivered = 0
    for recipient, row_payload in pending:
        with engine.begin() as conn:
            conn.execute(
                notifications.update()
                .where(notifications.c.event_id == event_id,
                       notifications.c.recipient == recipient)
                .values(attempts=notifications.c.attempts + 1)
            )
        notifier.deliver(Notification(key=delivery_key(event_id, recipient), event_id=event_id,
                                      event_type=event_type, recipient=recipient,
                                      payload=row_payload))
        with engine.begin() as conn:
            conn.execute(
                notifications.update()
                .where(notifications.c.event_id == event_id,
                       notifications.c.recipient == recipient)
                .values(delivered_at=sa.func.now())
            )
        delivered += 1
        if on_progress is not None:
            on_progress(delivered)
    return NotifyOutcome(recipients=len(unique), newly_created=created, delivered=delivered)
