"""Video jobs and caption segments: the rows the API reads while and after a job runs.

A video whose delete was accepted (spool/db/deletions.py) gets no row back from a late write
of its job: the writes that add rows look for its deletion in the same transaction.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spool.db import insert_ignore, metadata
from spool.db.deletions import is_deleted, not_deleted

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

videos = sa.Table(
    "videos",
    metadata,
    sa.Column("video_id", sa.String(100), primary_key=True),
    sa.Column("owner_id", sa.String(300), nullable=False),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("metadata", sa.JSON, nullable=True),
    sa.Column("renditions", sa.JSON, nullable=True),
    sa.Column("poster_key", sa.String(500), nullable=True),
    sa.Column("captions_state", sa.String(40), nullable=True),
    sa.Column("captions_language", sa.String(20), nullable=True),
    sa.Column("captions", sa.JSON, nullable=True),
    sa.Column("errors", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column(
        "updated_at",
        sa.DateTime(timezone=True),
        server_default=sa.func.now(),
        onupdate=sa.func.now(),
    ),
    # Adaptive streaming (migration 0002, which adds them last): the HLS master playlist's
    # and the storyboard VTT's keys.
    sa.Column("hls_key", sa.String(500), nullable=True),
    sa.Column("storyboard_key", sa.String(500), nullable=True),
    # When the video could first be played, before it was ready (migration 0007).
    sa.Column("playable_at", sa.DateTime(timezone=True), nullable=True),
)

caption_segments = sa.Table(
    "caption_segments",
    metadata,
    sa.Column("video_id", sa.String(100), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)


def ensure_video(engine: Engine, video_id: str, owner_id: str, status: str) -> None:
    """Create the row once; a retry finds it and changes nothing, nor does a write of a job
    whose video is being deleted."""
    with engine.begin() as conn:
        if is_deleted(conn, video_id):
            return
        conn.execute(
            insert_ignore(conn, videos).values(
                video_id=video_id, owner_id=owner_id, status=status, errors={}
            )
        )


def update_video(engine: Engine, video_id: str, **values: Any) -> None:
    """Set columns of one video; setting the same values again is harmless."""
    errors = values.pop("merge_errors", None)
    with engine.begin() as conn:
        if errors:
            current = (
                conn.execute(
                    sa.select(videos.c.errors).where(videos.c.video_id == video_id)
                ).scalar_one_or_none()
                or {}
            )
            values["errors"] = {**current, **errors}
        if values:
            conn.execute(videos.update().where(videos.c.video_id == video_id).values(**values))


def replace_caption_segments(engine: Engine, video_id: str, segments: list[dict]) -> None:
    """Store the segments of one transcript, replacing any earlier attempt's, in one
    transaction: a retry ends with exactly the same rows."""
    rows = [
        {
            "video_id": video_id,
            "idx": idx,
            "start": float(seg["start"]),
            "end": float(seg["end"]),
            "text": seg["text"],
        }
        for idx, seg in enumerate(segments)
    ]
    with engine.begin() as conn:
        conn.execute(caption_segments.delete().where(caption_segments.c.video_id == video_id))
        if rows and not is_deleted(conn, video_id):
            conn.execute(caption_segments.insert(), rows)


def _row(row: Any) -> dict:
    d = dict(row._mapping)
    for k in ("created_at", "updated_at", "playable_at"):
        if d.get(k) is not None:
            d[k] = d[k].isoformat()
    return d


def get_video(engine: Engine, video_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(videos).where(videos.c.video_id == video_id)).first()
    return _row(row) if row is not None else None


def list_videos(engine: Engine, limit: int = 50, after: str | None = None) -> list[dict]:
    """Videos never deleted, newest first, from just after the cursor ``after`` (one made by
    ``cursor_of``): a keyset page, as fast on the thousandth page as on the first."""
    query = sa.select(videos).where(not_deleted(videos.c.video_id))
    with engine.connect() as conn:
        if after is not None:
            query = query.where(_older_than(conn, *parse_cursor(after)))
        rows = conn.execute(
            query.order_by(videos.c.created_at.desc(), videos.c.video_id.desc()).limit(limit)
        ).all()
    return [_row(r) for r in rows]


# A cursor is the last listed row's place in the list's order: its creation time in
# microseconds since the epoch (UTC) and its id. Every string matching this is a cursor.
CURSOR_PATTERN = r"^[0-9]{1,18}~[A-Za-z0-9_-]{0,100}$"
_LATEST_MICROS = int((datetime(9999, 12, 31, tzinfo=UTC) - EPOCH).total_seconds()) * 10**6


def cursor_of(row: dict) -> str:
    """The cursor of a listed row (``created_at`` as ``_row`` gives it): the next page
    starts past it."""
    when = datetime.fromisoformat(row["created_at"]) if row.get("created_at") else EPOCH
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # SQLite: UTC
    micros = (when - EPOCH) // timedelta(microseconds=1)
    return f"{max(0, micros)}~{row['video_id']}"


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at, video_id) of a cursor; raises ValueError unless it matches
    CURSOR_PATTERN, and takes every string that does."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ValueError(f"cursor {cursor[:40]!r} is not one this API made")
    micros, video_id = cursor.split("~", 1)
    return EPOCH + timedelta(microseconds=min(int(micros), _LATEST_MICROS)), video_id


def _older_than(conn: Connection, created: datetime, video_id: str) -> Any:
    """Rows after (created, video_id) in the list's order (created_at is always set: it
    has a server default)."""
    at: Any = created
    if conn.dialect.name == "sqlite":
        # SQLite keeps CURRENT_TIMESTAMP's text ('YYYY-MM-DD HH:MM:SS', UTC); a bound
        # datetime would be compared as text with microseconds added, never equal to it.
        at = sa.type_coerce(_sqlite_text(created.astimezone(UTC)), sa.String)
    return sa.or_(
        videos.c.created_at < at,
        sa.and_(videos.c.created_at == at, videos.c.video_id < video_id),
    )


def _sqlite_text(when: datetime) -> str:
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{when.microsecond:06d}" if when.microsecond else text


def delete_video_rows(engine: Engine, video_id: str) -> int:
    """Remove the video's rows (its record, its caption segments, its notices' ledger rows);
    how many. Its deletion's own row stays, and so does the ledger row of its deletion's
    notice."""
    from spool.db.notifications import notifications

    with engine.begin() as conn:
        gone = conn.execute(
            caption_segments.delete().where(caption_segments.c.video_id == video_id)
        ).rowcount
        gone += conn.execute(
            notifications.delete().where(
                notifications.c.event_id.in_(
                    [f"video-done:{video_id}", f"captions-available:{video_id}"]
                )
            )
        ).rowcount
        gone += conn.execute(videos.delete().where(videos.c.video_id == video_id)).rowcount
    return gone


def get_caption_segments(engine: Engine, video_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(caption_segments)
            .where(caption_segments.c.video_id == video_id)
            .order_by(caption_segments.c.idx)
        ).all()
    return [dict(r._mapping) for r in rows]
