"""One request's bytes of a resumable upload (a tus PATCH, or the body of a creation).

The request takes the upload's lease, so it is the one writer whatever the number of API
hosts; it appends at the recorded offset, records what the store made durable as it goes
(whole parts) and when it ends, however it ends: a client that drops the connection at 90 %
resumes from what was received. With a checksum nothing is recorded before the whole body is
checked, so a mismatch leaves the upload as it was. The last byte completes the object and
starts the job once (spool/service/uploads.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

from spool import scratch
from spool.db import uploads as rows
from spool.db.uploads import UploadRow
from spool.service.uploads import UploadRefused, UploadService
from spool.storage import KeyNotFound, keys
from spool.storage.resumable import Held, ResumableWrite

WRITE_BYTES = 4 * 1024 * 1024  # bytes handed to the store's thread at a time


class BodyInterrupted(Exception):
    """The body stopped before its end: the client went away, or sent nothing for the idle
    timeout. What arrived is kept (unless a checksum covers the whole body)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


@dataclass
class Received:
    """Where the request left the upload."""

    row: UploadRow
    interrupted: BodyInterrupted | None = None


class _Request:
    def __init__(self, service: UploadService, row: UploadRow, checksum: Checksum | None):
        self.service, self.row, self.checksum = service, row, checksum
        self.owner = secrets.token_hex(16)
        self.received = row.received
        self.recorded_tail = row.tail_key
        self.hasher = hashlib.sha1() if checksum else None
        self.renewed = service.clock()

    async def record(self, held: Held) -> None:
        svc = self.service
        until = svc.clock() + svc.lease_seconds
        if not await asyncio.to_thread(
            rows.record_progress, svc.engine, self.row.upload_id, self.owner, held, until
        ):
            raise UploadRefused(
                409, "the upload was ended, or taken over by another request, meanwhile"
            )
        self.renewed = svc.clock()
        if self.recorded_tail and self.recorded_tail != held.tail_key:
            await asyncio.to_thread(svc.store.forget_tail, self.recorded_tail)
        self.recorded_tail = held.tail_key

    async def renew_if_due(self) -> None:
        svc = self.service
        if svc.clock() - self.renewed < svc.lease_seconds / 3:
            return
        self.renewed = svc.clock()
        await asyncio.to_thread(
            rows.renew_lease,
            svc.engine,
            self.row.upload_id,
            self.owner,
            self.renewed + svc.lease_seconds,
        )

    async def write(self, writer: ResumableWrite, data: bytearray) -> None:
        held = await asyncio.to_thread(writer.write, data)
        if held is not None and self.checksum is None:
            await self.record(held)
        else:
            await self.renew_if_due()

    async def pump(self, writer: ResumableWrite, body: AsyncIterator[bytes]) -> None:
        """Every byte of the body into the writer, in large writes."""
        buffer = bytearray()
        try:
            async for chunk in body:
                if self.received + len(chunk) > self.row.length:
                    raise UploadRefused(
                        413,
                        f"the body goes past Upload-Length {self.row.length}: at most "
                        f"{self.row.length - self.received} more bytes fit",
                    )
                self.received += len(chunk)
                if self.hasher is not None:
                    self.hasher.update(chunk)
                buffer += chunk
                if len(buffer) >= WRITE_BYTES:
                    data, buffer = buffer, bytearray()
                    await self.write(writer, data)
        finally:
            if buffer:
                await asyncio.to_thread(writer.write, buffer)

    def checksum_problem(self, interrupted: BodyInterrupted | None) -> UploadRefused | None:
        if self.checksum is None or self.hasher is None:
            return None
        if interrupted is not None:
            return UploadRefused(460, f"{interrupted}: the body's checksum cannot be checked")
        if not secrets.compare_digest(self.hasher.digest(), self.checksum.digest):
            return UploadRefused(
                460, "Upload-Checksum: the body's sha1 does not match; nothing was kept"
            )
        return None


async def receive(
    service: UploadService, row: UploadRow, body: AsyncIterator[bytes], checksum: Checksum | None
) -> Received:
    """Append ``body`` at the upload's offset (the caller checked it matches)."""
    request = _Request(service, row, checksum)
    if not await asyncio.to_thread(
        rows.take_lease,
        service.engine,
        row.upload_id,
        request.owner,
        service.clock(),
        service.lease_seconds,
    ):
        await _refuse_unleased(service, row)
        raise UploadRefused(
            423,
            "another request is writing this upload (a dropped connection is let go after "
            f"{service.settings.upload_idle_seconds:.0f} s of silence); retry",
            {"Retry-After": "2"},
        )
    folder = scratch.new_dir("upload-")
    try:
        return await _receive_leased(request, body, folder)
    finally:
        await asyncio.to_thread(rows.release_lease, service.engine, row.upload_id, request.owner)
        shutil.rmtree(folder, ignore_errors=True)


async def _refuse_unleased(service: UploadService, row: UploadRow) -> None:
    """409 when the upload moved on (another request completed or extended it)."""
    current = await asyncio.to_thread(rows.get_upload, service.engine, row.upload_id)
    if current is None or current.state != rows.RECEIVING or current.received != row.received:
        raise UploadRefused(409, "the upload moved on meanwhile: HEAD it for its offset")


async def _receive_leased(request: _Request, body: AsyncIterator[bytes], folder) -> Received:
    service, row = request.service, request.row
    # Read again under the lease: the row read before may be a request behind.
    current = await asyncio.to_thread(rows.get_upload, service.engine, row.upload_id)
    if current is None or current.state != rows.RECEIVING or current.received != row.received:
        raise UploadRefused(409, "the upload moved on meanwhile: HEAD it for its offset")
    try:
        writer = await asyncio.to_thread(
            service.store.resume,
            row.upload_id,
            keys.source_key(row.video_id),
            row.handle,
            row.held(),
            folder,
        )
    except KeyNotFound as exc:
        raise UploadRefused(410, f"the store no longer has this upload ({exc})") from None
    try:
        return await _finish(request, writer, body)
    finally:
        await asyncio.to_thread(writer.close)


async def _finish(request: _Request, writer: ResumableWrite, body: AsyncIterator[bytes]):
    service, row = request.service, request.row
    interrupted = None
    try:
        await request.pump(writer, body)
    except BodyInterrupted as exc:
        interrupted = exc
    problem = request.checksum_problem(interrupted)
    if problem is not None:
        raise problem
    if request.received == row.length:
        await asyncio.to_thread(writer.complete)
        if not await asyncio.to_thread(
            rows.mark_complete, service.engine, row.upload_id, request.owner, row.length
        ):
            raise UploadRefused(409, "the upload was ended meanwhile")
        row.state, row.received = rows.COMPLETE, row.length
        await service.ensure_job(row)
        return Received(row)
    await request.record(await asyncio.to_thread(writer.finish))
    row.received = request.received
    return Received(row, interrupted)
