"""Resumable uploads: each upload's whole state, so any API process can take it up.

An upload's offset, length, options, expiry, the store's handle (an S3 multipart upload id)
and the parts it holds live in one row, never in a process's memory: a resume after an API
restart, or through another API host, reads it here. One request at a time writes an upload:
it takes the row's lease (``take_lease``), every write it makes is conditioned on still
holding it, and a lease left by a killed process lapses after ``lease_seconds``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spool.db import metadata
from spool.storage.resumable import Held

RECEIVING, COMPLETE, TERMINATED, EXPIRED = "receiving", "complete", "terminated", "expired"

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("upload_id", sa.String(64), primary_key=True),
    sa.Column("video_id", sa.String(100), nullable=False, unique=True),
    # A digest of the API key that made the upload: only that key reaches it, and the
    # per-key limits count by it.
    sa.Column("key_id", sa.String(64), nullable=False, index=True),
    sa.Column("length", sa.BigInteger, nullable=False),
    sa.Column("received", sa.BigInteger, nullable=False),
    sa.Column("options", sa.Text, nullable=False),  # JSON: the job's options from the metadata
    sa.Column("raw_metadata", sa.Text, nullable=False),  # Upload-Metadata as sent, for HEAD
    sa.Column("handle", sa.String(1024), nullable=True),  # the store's: an S3 UploadId
    sa.Column("parts", sa.Text, nullable=False),  # JSON [[number, etag, size], ...]
    sa.Column("tail_key", sa.String(500), nullable=True),  # bytes short of a whole part
    sa.Column("tail_bytes", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("job_id", sa.String(200), nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)


@dataclass
class UploadRow:
    upload_id: str
    video_id: str
    key_id: str
    length: int
    received: int
    options: dict[str, Any]
    raw_metadata: str
    handle: str | None
    parts: list[list[Any]] = field(default_factory=list)
    tail_key: str | None = None
    tail_bytes: int = 0
    state: str = RECEIVING
    job_id: str | None = None
    created_at: float = 0.0
    expires_at: float = 0.0

    def held(self) -> Held:
        """What the store holds of it, as recorded."""
        return Held(self.received, self.parts, self.tail_key, self.tail_bytes)


def _row(values: Any) -> UploadRow:
    m = values._mapping
    return UploadRow(
        upload_id=m["upload_id"],
        video_id=m["video_id"],
        key_id=m["key_id"],
        length=int(m["length"]),
        received=int(m["received"]),
        options=json.loads(m["options"]),
        raw_metadata=m["raw_metadata"],
        handle=m["handle"],
        parts=json.loads(m["parts"]),
        tail_key=m["tail_key"],
        tail_bytes=int(m["tail_bytes"]),
        state=m["state"],
        job_id=m["job_id"],
        created_at=float(m["created_at"]),
        expires_at=float(m["expires_at"]),
    )


def create_upload(engine: Engine, row: UploadRow) -> None:
    with engine.begin() as conn:
        conn.execute(
            uploads.insert().values(
                upload_id=row.upload_id,
                video_id=row.video_id,
                key_id=row.key_id,
                length=row.length,
                received=0,
                options=json.dumps(row.options),
                raw_metadata=row.raw_metadata,
                handle=row.handle,
                parts="[]",
                tail_key=None,
                tail_bytes=0,
                state=RECEIVING,
                created_at=row.created_at,
                expires_at=row.expires_at,
            )
        )


def get_upload(engine: Engine, upload_id: str) -> UploadRow | None:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(uploads).where(uploads.c.upload_id == upload_id)
        ).one_or_none()
    return None if found is None else _row(found)


def take_lease(engine: Engine, upload_id: str, owner: str, now: float, seconds: float) -> bool:
    """Whether ``owner`` now holds the upload's lease: free, lapsed, or its own."""
    with engine.begin() as conn:
        taken = conn.execute(
            uploads.update()
            .where(
                uploads.c.upload_id == upload_id,
                uploads.c.state == RECEIVING,
                sa.or_(
                    uploads.c.lease_owner.is_(None),
                    uploads.c.lease_owner == owner,
                    uploads.c.lease_until < now,
                ),
            )
            .values(lease_owner=owner, lease_until=now + seconds)
        )
    return taken.rowcount == 1


def _held(upload_id: str, owner: str) -> Any:
    return sa.and_(uploads.c.upload_id == upload_id, uploads.c.lease_owner == owner)


def renew_lease(engine: Engine, upload_id: str, owner: str, until: float) -> bool:
    with engine.begin() as conn:
        renewed = conn.execute(
            uploads.update().where(_held(upload_id, owner)).values(lease_until=until)
        )
    return renewed.rowcount == 1


def release_lease(engine: Engine, upload_id: str, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            uploads.update()
            .where(_held(upload_id, owner))
            .values(lease_owner=None, lease_until=None)
        )


def record_progress(
    engine: Engine, upload_id: str, owner: str, progress: Held, lease_until: float
) -> bool:
    """Record the bytes made durable, and renew the lease, if ``owner`` still holds it."""
    with engine.begin() as conn:
        recorded = conn.execute(
            uploads.update()
            .where(_held(upload_id, owner), uploads.c.state == RECEIVING)
            .values(
                received=progress.received,
                parts=json.dumps(progress.parts),
                tail_key=progress.tail_key,
                tail_bytes=progress.tail_bytes,
                lease_until=lease_until,
            )
        )
    return recorded.rowcount == 1


def mark_complete(engine: Engine, upload_id: str, owner: str, length: int) -> bool:
    """The whole upload is stored under its final key: no request writes it again."""
    with engine.begin() as conn:
        done = conn.execute(
            uploads.update()
            .where(_held(upload_id, owner), uploads.c.state == RECEIVING)
            .values(
                state=COMPLETE,
                received=length,
                parts="[]",
                tail_key=None,
                tail_bytes=0,
                lease_owner=None,
                lease_until=None,
            )
        )
    return done.rowcount == 1


def record_job(engine: Engine, upload_id: str, job_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(uploads.update().where(uploads.c.upload_id == upload_id).values(job_id=job_id))


def end_upload(engine: Engine, upload_id: str, state: str, *, now: float | None = None) -> bool:
    """Terminate or expire an upload still receiving (``now``: only if it has expired by
    then). Whether this call ended it."""
    condition = [uploads.c.upload_id == upload_id, uploads.c.state == RECEIVING]
    if now is not None:
        condition.append(uploads.c.expires_at < now)
    with engine.begin() as conn:
        ended = conn.execute(
            uploads.update()
            .where(*condition)
            .values(state=state, lease_owner=None, lease_until=None)
        )
    return ended.rowcount == 1


def expired_uploads(engine: Engine, now: float, limit: int = 100) -> list[UploadRow]:
    """Uploads still receiving past their expiry, oldest first."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(uploads)
            .where(uploads.c.state == RECEIVING, uploads.c.expires_at < now)
            .order_by(uploads.c.expires_at)
            .limit(limit)
        ).all()
    return [_row(r) for r in found]


def completed_without_job(engine: Engine, limit: int = 100) -> list[UploadRow]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(uploads)
            .where(uploads.c.state == COMPLETE, uploads.c.job_id.is_(None))
            .limit(limit)
        ).all()
    return [_row(r) for r in found]


def uploads_in_flight(engine: Engine, key_id: str, now: float) -> tuple[int, int]:
    """How many uploads of a key are still receiving, and how many bytes they still await."""
    with engine.connect() as conn:
        count, awaited = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(uploads.c.length - uploads.c.received), 0),
            ).where(
                uploads.c.key_id == key_id,
                uploads.c.state == RECEIVING,
                uploads.c.expires_at >= now,
            )
        ).one()
    return int(count), int(awaited)
