"""Deleted videos: a row per video whose delete was accepted, kept after everything else of
the video is gone (docs/storage.md, deleting a video).

The row is written when the delete is accepted, before any object is removed: from then on
the API answers 404 for the video and its media, and a late write of its job (a worker that
finishes after the cancel) finds it and adds no row back. It stays once the video is gone,
so a repeated delete is answered with the same job and the video is never listed again.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spool.db import insert_ignore, metadata

DELETING, DELETED = "deleting", "deleted"

video_deletions = sa.Table(
    "video_deletions",
    metadata,
    sa.Column("video_id", sa.String(100), primary_key=True),
    sa.Column("job_id", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
)


def mark_deleting(engine: Engine, video_id: str, job_id: str, reason: str) -> bool:
    """Record that the video is being deleted; True when this call recorded it (a repeat
    finds the row and changes nothing)."""
    with engine.begin() as conn:
        inserted = conn.execute(
            insert_ignore(conn, video_deletions)
            .values(video_id=video_id, job_id=job_id, reason=reason, state=DELETING)
            .returning(video_deletions.c.video_id)
        ).first()
    return inserted is not None


def mark_deleted(engine: Engine, video_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            video_deletions.update()
            .where(video_deletions.c.video_id == video_id)
            .values(state=DELETED, deleted_at=sa.func.now())
        )


def deletion_of(engine: Engine, video_id: str) -> dict | None:
    """The video's deletion (job_id, reason, state), or None when it was never deleted."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(video_deletions).where(video_deletions.c.video_id == video_id)
        ).first()
    return dict(row._mapping) if row is not None else None


def is_deleted(conn: Connection, video_id: str) -> bool:
    """Whether a delete of the video was accepted, inside the caller's transaction."""
    found = conn.execute(
        sa.select(video_deletions.c.video_id).where(video_deletions.c.video_id == video_id)
    ).first()
    return found is not None


def not_deleted(video_id_column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """A WHERE clause keeping rows of videos never deleted."""
    return ~sa.exists().where(video_deletions.c.video_id == video_id_column)
