"""Resumable uploads under the API's tus routes: create, find, receive, end, and the job
each one starts once complete (docs/storage.md, resumable uploads).

Nothing here lives in a process's memory between requests: an upload is its database row
(spool/db/uploads.py) and what the store holds (spool/storage/resumable.py), so any API
process, after any restart, serves any upload. Refusals are ``UploadRefused`` with the HTTP
status the tus protocol gives them and a message naming the problem.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client

from spool.config import Settings
from spool.db import uploads as rows
from spool.db.uploads import UploadRow
from spool.ingest import new_video_id, video_job_input
from spool.service.deletion import schedule_retention
from spool.service.jobs import start_video
from spool.storage import ObjectStorage, keys
from spool.storage.resumable import ResumableStore, open_resumable

log = logging.getLogger("spool.uploads")


class UploadRefused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def key_id(api_key: str) -> str:
    """What an upload remembers of the key that made it: a digest, never the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


@dataclass
class UploadService:
    settings: Settings
    engine: Engine
    storage: ObjectStorage
    client: Client
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.store: ResumableStore = open_resumable(
            self.storage, self.settings.storage_part_size_mb * 1024 * 1024
        )

    @property
    def lease_seconds(self) -> float:
        """How long a request holds an upload without a sign of life: past the idle cut."""
        return self.settings.upload_idle_seconds * 2 + 30

    def expiry_seconds(self) -> float:
        """Never past the store's own sweep of abandoned writes, which would take it first."""
        s = self.settings
        if s.storage_abandoned_write_seconds:
            return min(s.upload_expiry_seconds, s.storage_abandoned_write_seconds)
        return s.upload_expiry_seconds

    async def create(
        self, owner_key: str, length: int, options: dict[str, Any], raw_metadata: str
    ) -> UploadRow:
        s = self.settings
        if length < 1:
            raise UploadRefused(400, "Upload-Length: a video has at least one byte")
        if length > s.max_upload_bytes:
            raise UploadRefused(
                413, f"Upload-Length {length} exceeds the limit of {s.max_upload_bytes} bytes"
            )
        now = self.clock()
        await self._check_key_limits(owner_key, length, now)
        upload_id, video_id = secrets.token_hex(16), new_video_id()
        handle = await asyncio.to_thread(self.store.begin, upload_id, keys.source_key(video_id))
        row = UploadRow(
            upload_id=upload_id,
            video_id=video_id,
            key_id=owner_key,
            length=length,
            received=0,
            options=options,
            raw_metadata=raw_metadata,
            handle=handle,
            created_at=now,
            expires_at=now + self.expiry_seconds(),
        )
        await asyncio.to_thread(rows.create_upload, self.engine, row)
        return row

    async def _check_key_limits(self, owner_key: str, length: int, now: float) -> None:
        s = self.settings
        count, awaited = await asyncio.to_thread(
            rows.uploads_in_flight, self.engine, owner_key, now
        )
        retry = {"Retry-After": str(int(s.upload_idle_seconds))}
        if count >= s.upload_max_per_key:
            raise UploadRefused(
                429,
                f"this API key has {count} unfinished uploads, the most it may have "
                f"(SPOOL_UPLOAD_MAX_PER_KEY): finish or DELETE one",
                retry,
            )
        if awaited + length > s.upload_max_bytes_per_key:
            raise UploadRefused(
                429,
                f"this API key's unfinished uploads await {awaited} bytes; {length} more "
                f"would pass its limit of {s.upload_max_bytes_per_key} "
                "(SPOOL_UPLOAD_MAX_BYTES_PER_KEY)",
                retry,
            )

    async def find(self, upload_id: str, owner_key: str) -> UploadRow:
        """The upload, if this key made it and it is not gone: 404 unknown, 410 ended."""
        row = await asyncio.to_thread(rows.get_upload, self.engine, upload_id)
        if row is None or not secrets.compare_digest(row.key_id, owner_key):
            raise UploadRefused(404, f"no upload {upload_id!r}")
        if row.state == rows.TERMINATED:
            raise UploadRefused(410, f"upload {upload_id!r} was terminated")
        expired = row.state == rows.EXPIRED or (
            row.state == rows.RECEIVING and row.expires_at < self.clock()
        )
        if expired:
            raise UploadRefused(
                410, f"upload {upload_id!r} expired at {http_date(row.expires_at)}: start anew"
            )
        return row

    async def terminate(self, row: UploadRow) -> None:
        if row.state != rows.RECEIVING:
            raise UploadRefused(409, f"upload {row.upload_id!r} is complete: its video is kept")
        if await asyncio.to_thread(rows.end_upload, self.engine, row.upload_id, rows.TERMINATED):
            await self._drop(row)

    async def _drop(self, row: UploadRow) -> None:
        await asyncio.to_thread(
            self.store.drop, row.upload_id, keys.source_key(row.video_id), row.handle
        )

    async def ensure_job(self, row: UploadRow) -> str:
        """The complete upload's job, started once: the workflow id is the video's, so a
        second start (a repeated request, another API host) returns the same job."""
        if row.job_id is not None:
            return row.job_id
        o = row.options
        inp = video_job_input(
            self.settings,
            row.video_id,
            owner_id=o.get("owner_id") or "api",
            captions=bool(o.get("captions", True)),
            renditions=o.get("renditions"),
            callback_url=o.get("callback_url"),
        )
        try:
            # The retention first, as for a form upload: a job never runs without the
            # deletion it was promised (one deletion per video: a repeat is absorbed).
            if o.get("delete_after"):
                delete_at = datetime.fromisoformat(o["delete_after"])
                await schedule_retention(self.client, self.settings, row.video_id, delete_at)
            started = await start_video(
                self.client,
                self.settings,
                inp,
                file_name=o.get("filename") or None,
                size_bytes=row.length,
            )
        except Exception as exc:  # noqa: BLE001 - Temporal unreachable or refusing
            raise UploadRefused(
                503,
                f"the upload is stored but its job could not be started ({exc}); "
                "HEAD or PATCH the upload again to retry",
                {"Retry-After": "5"},
            ) from None
        await asyncio.to_thread(rows.record_job, self.engine, row.upload_id, started.job_id)
        row.job_id = started.job_id
        return started.job_id

    async def sweep(self) -> int:
        """End the uploads past their expiry (freeing what the store holds) and start the
        jobs of complete uploads whose start failed. How many uploads it ended."""
        now, ended = self.clock(), 0
        for row in await asyncio.to_thread(rows.expired_uploads, self.engine, now):
            if await asyncio.to_thread(
                rows.end_upload, self.engine, row.upload_id, rows.EXPIRED, now=now
            ):
                await self._drop(row)
                ended += 1
        for row in await asyncio.to_thread(rows.completed_without_job, self.engine):
            try:
                await self.ensure_job(row)
            except UploadRefused as exc:
                log.warning("upload %s: %s", row.upload_id, exc.message)
        return ended
