"""Video jobs and caption segments: the rows the API reads while and after a job runs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spool.db import insert_ignore, metadata

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
    """Create the row once; a retry finds it and changes nothing."""
    with engine.begin() as conn:
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
        if rows:
            conn.execute(caption_segments.insert(), rows)


def _row(row: Any) -> dict:
    d = dict(row._mapping)
    for k in ("created_at", "updated_at"):
        if d.get(k) is not None:
            d[k] = d[k].isoformat()
    return d


def get_video(engine: Engine, video_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(videos).where(videos.c.video_id == video_id)).first()
    return _row(row) if row is not None else None


def list_videos(engine: Engine, limit: int = 50) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(videos).order_by(videos.c.created_at.desc()).limit(limit)
        ).all()
    return [_row(r) for r in rows]


def get_caption_segments(engine: Engine, video_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(caption_segments)
            .where(caption_segments.c.video_id == video_id)
            .order_by(caption_segments.c.idx)
        ).all()
    return [dict(r._mapping) for r in rows]
