"""The notification ledger: one row per (event, recipient), the key that makes delivery once."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spool.db import insert_ignore, metadata

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("event_id", sa.String(300), primary_key=True),
    sa.Column("recipient", sa.String(300), primary_key=True),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Refused for good (an SMTP 5xx, a malformed address, an opted-out recipient): not
    # tried again, and why.
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
)

# Who followed a signed unsubscribe link: never emailed again (docs/notifications.md).
email_opt_outs = sa.Table(
    "email_opt_outs",
    metadata,
    sa.Column("recipient", sa.String(300), primary_key=True),
    sa.Column("opted_out_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)


def opt_out_of_email(engine: Engine, recipient: str) -> None:
    """Record the opt-out; a repeat changes nothing."""
    with engine.begin() as conn:
        conn.execute(insert_ignore(conn, email_opt_outs).values(recipient=recipient))


def opted_out_of_email(engine: Engine, recipient: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(email_opt_outs.c.recipient).where(email_opt_outs.c.recipient == recipient)
            ).first()
            is not None
        )


def delivery_key(event_id: str, recipient: str) -> str:
    """The idempotency key a receiver sees on every delivery attempt of one notification."""
    return f"{event_id}:{recipient}"


def for_recipients():
    """UPDATE of one event's rows for some of its recipients, both bound when executed
    (``event``, ``recipients``)."""
    return notifications.update().where(
        notifications.c.event_id == sa.bindparam("event"),
        notifications.c.recipient.in_(sa.bindparam("recipients", expanding=True)),
    )


# Built once: building SQLAlchemy statements cost more CPU than running them, and a fan-out
# runs on every publish.
ONE_MORE_ATTEMPT = for_recipients().values(attempts=notifications.c.attempts + 1)
DELIVERED = for_recipients().values(delivered_at=sa.func.now())
FAILED = (
    notifications.update()
    .where(
        notifications.c.event_id == sa.bindparam("event"),
        notifications.c.recipient == sa.bindparam("who"),
    )
    .values(failed_at=sa.func.now(), error=sa.bindparam("why"))
)


@functools.cache
def new_rows(dialect: str) -> Any:
    """INSERT of ledger rows that skips existing ones, RETURNING the rows it made; built once
    per dialect."""
    return insert_ignore(dialect, notifications).returning(notifications.c.recipient)


def count_attempt(conn, event_id: str, recipients: list[str]) -> None:
    """One more delivery attempt for ``recipients``, recorded before they are sent."""
    if recipients:
        conn.execute(ONE_MORE_ATTEMPT, {"event": event_id, "recipients": recipients})


# A fan-out's pages (spool/fanout.py) write thousands of rows a second: plain SQL, the same
# on SQLite and PostgreSQL but for the placeholders, spares SQLAlchemy's per-row parameter
# processing, which cost more than the database's own work.
_ROWS_PER_INSERT = 1_000


def _placeholder(conn) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


def insert_rows(
    conn, event_id: str, event_type: str, payload_json: str, recipients: list[str]
) -> list[str]:
    """A ledger row per recipient unless it exists (its attempt not yet counted); the
    recipients whose row is new. Multi-row INSERTs of ``_ROWS_PER_INSERT`` rows."""
    p = _placeholder(conn)
    cast = "" if conn.dialect.name == "sqlite" else "::json"
    created: list[str] = []
    for start in range(0, len(recipients), _ROWS_PER_INSERT):
        chunk = recipients[start : start + _ROWS_PER_INSERT]
        values = ", ".join([f"({p}, {p}, {p}, {p}{cast}, 0)"] * len(chunk))
        params: list[str] = []
        for recipient in chunk:
            params += (event_id, recipient, event_type, payload_json)
        created += [
            row[0]
            for row in conn.exec_driver_sql(
                "INSERT INTO notifications (event_id, recipient, event_type, payload, attempts) "
                f"VALUES {values} ON CONFLICT DO NOTHING RETURNING recipient",
                tuple(params),
            )
        ]
    return created


def pending_in_range(conn, event_id: str, low: str, high: str) -> list[tuple[str, Any]]:
    """(recipient, payload as stored) of the event's rows from ``low`` to ``high`` that are
    neither delivered nor failed: a range of the primary key."""
    p = _placeholder(conn)
    return [
        (row[0], row[1])
        for row in conn.exec_driver_sql(
            "SELECT recipient, payload FROM notifications WHERE event_id = "
            f"{p} AND recipient BETWEEN {p} AND {p} "
            "AND delivered_at IS NULL AND failed_at IS NULL",
            (event_id, low, high),
        )
    ]


def mark_rows(conn, event_id: str, delivered: list[str], attempting: list[str]) -> None:
    """``delivered`` marked delivered and ``attempting`` one attempt more, row by key."""
    p = _placeholder(conn)
    where = f"WHERE event_id = {p} AND recipient = {p}"
    if delivered:
        conn.exec_driver_sql(
            f"UPDATE notifications SET delivered_at = CURRENT_TIMESTAMP {where}",
            [(event_id, r) for r in delivered],
        )
    if attempting:
        conn.exec_driver_sql(
            f"UPDATE notifications SET attempts = attempts + 1 {where}",
            [(event_id, r) for r in attempting],
        )


def pending_among(conn, event_id: str, recipients: list[str]) -> list[tuple[str, Any]]:
    """(recipient, payload) of the event's rows for ``recipients`` (a short list, in no
    order the database knows) that are neither delivered nor failed."""
    query = sa.select(notifications.c.recipient, notifications.c.payload).where(
        notifications.c.event_id == event_id,
        notifications.c.recipient.in_(recipients),
        notifications.c.delivered_at.is_(None),
        notifications.c.failed_at.is_(None),
    )
    return [(row[0], row[1]) for row in conn.execute(query)]
