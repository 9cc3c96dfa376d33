"""The notification ledger: one row per (event, recipient), the key that makes delivery once."""

from __future__ import annotations

import sqlalchemy as sa

from spool.db import metadata

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
)


def delivery_key(event_id: str, recipient: str) -> str:
    """The idempotency key a receiver sees on every delivery attempt of one notification."""
    return f"{event_id}:{recipient}"
