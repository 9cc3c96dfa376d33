"""Resumable writes on S3: one multipart upload per upload, its parts sent from the API's
scratch disk (never memory) as they fill up, a few in flight while the next is received.

Every part but the last is exactly ``part_bytes`` (at least S3's 5 MiB), so the parts a request
sends are whole ones; what a request ends with short of a part goes to a tail object
(``uploads/<id>/tail-<offset>``) that the next request, on any host, reads back first.
A tail is named by the offset it ends at, so a request killed after writing a new tail and
before recording it leaves the recorded one intact.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from spool.storage import keys
from spool.storage.base import KeyNotFound
from spool.storage.resumable import Held, ResumableStore, ResumableWrite
from spool.storage.s3 import S3Storage
from spool.storage.s3_errors import error_code, translated
from spool.storage.s3_multipart import MIN_PART_BYTES

log = logging.getLogger("spool.storage")
# Parts sent at once while the next fills: a request's scratch disk holds one more than this.
PARTS_IN_FLIGHT = 3


class S3Resumable(ResumableStore):
    def __init__(self, storage: S3Storage, part_bytes: int) -> None:
        self.storage = storage
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)

    def begin(self, upload_id: str, key: str) -> str | None:
        s3 = self.storage
        with translated(s3, key):
            created = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=s3._object_key(key))
        return str(created["UploadId"])

    def resume(
        self, upload_id: str, key: str, handle: str | None, held: Held, scratch: Path
    ) -> ResumableWrite:
        assert handle is not None, "an S3 upload has its multipart handle"
        return _S3Write(self, upload_id, key, handle, held, scratch)

    def drop(self, upload_id: str, key: str, handle: str | None) -> None:
        s3 = self.storage
        if handle is not None:
            try:
                with translated(s3, key):
                    s3.client.abort_multipart_upload(
                        Bucket=s3.bucket, Key=s3._object_key(key), UploadId=handle
                    )
            except ClientError as exc:
                if error_code(exc) != "NoSuchUpload":  # aborted, or swept, already
                    raise
        s3.delete_prefix(keys.upload_prefix(upload_id))

    def forget_tail(self, tail_key: str) -> None:
        try:
            self.storage.delete(tail_key)
        except (BotoCoreError, ClientError, OSError) as exc:  # dropped with the upload later
            log.warning("could not delete the replaced tail %r: %s", tail_key, exc)


class _S3Write(ResumableWrite):
    def __init__(
        self, store: S3Resumable, upload_id: str, key: str, handle: str, held: Held, scratch: Path
    ) -> None:
        self.store, self.s3 = store, store.storage
        self.upload_id, self.key, self.handle = upload_id, key, handle
        self.parts = [list(p) for p in held.parts]
        self.scratch = scratch
        self.sending: deque[Future[list[Any]]] = deque()
        self.pool = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self.numbered = 0  # scratch files made, for their names
        self.file, self.path = self._new_file()
        self.buffered = 0
        if held.tail_key:
            self._read_tail(held.tail_key, held.tail_bytes)

    def _new_file(self) -> tuple[BinaryIO, Path]:
        self.numbered += 1
        path = self.scratch / f"part-{self.numbered}"
        return path.open("w+b"), path

    def _read_tail(self, tail_key: str, size: int) -> None:
        for chunk in self.s3.iter_range(tail_key, chunk_size=1024 * 1024):
            self.file.write(chunk)
        self.buffered = self.file.tell()
        if self.buffered != size:
            raise KeyNotFound(f"tail {tail_key!r} holds {self.buffered} bytes, not {size}")

    @property
    def _parts_bytes(self) -> int:
        return sum(int(size) for _, _, size in self.parts)

    def write(self, data: bytes | bytearray) -> Held | None:
        recorded, view = None, memoryview(data)
        while view:
            room = max(self.store.part_bytes - self.buffered, 0)
            self.file.write(view[:room])
            self.buffered += min(room, len(view))
            view = view[room:]
            if self.buffered >= self.store.part_bytes:
                if len(self.sending) >= PARTS_IN_FLIGHT:
                    recorded = self._take_sent(wait=1) or recorded
                number = len(self.parts) + len(self.sending) + 1
                self.sending.append(self.pool.submit(self._send_part, self.file, self.path, number))
                self.file, self.path = self._new_file()
                self.buffered = 0
        return self._take_sent() or recorded

    def _take_sent(self, wait: int = 0) -> Held | None:
        """The parts' Held when parts in flight have been sent since the last one (in order:
        a part sent before an earlier one is still in flight waits for it); waits for the
        first ``wait`` of them."""
        taken = 0
        while self.sending and (taken < wait or self.sending[0].done()):
            self.parts.append(self.sending.popleft().result())
            taken += 1
        return Held(self._parts_bytes, [list(p) for p in self.parts]) if taken else None

    def _send_part(self, fh: BinaryIO, path: Path, number: int) -> list[Any]:
        try:
            size = fh.tell()
            fh.seek(0)
            s3 = self.s3
            with translated(s3, self.key):
                sent = s3.client.upload_part(
                    Bucket=s3.bucket,
                    Key=s3._object_key(self.key),
                    UploadId=self.handle,
                    PartNumber=number,
                    Body=fh,
                    ContentLength=size,
                )
            return [number, sent["ETag"], size]
        finally:
            fh.close()
            path.unlink(missing_ok=True)

    def finish(self) -> Held:
        self._take_sent(wait=len(self.sending))
        received = self._parts_bytes + self.buffered
        if not self.buffered:
            return Held(received, [list(p) for p in self.parts])
        tail_key = keys.upload_tail_key(self.upload_id, received)
        self.file.flush()
        self.s3.put_file(self.path, tail_key)
        return Held(received, [list(p) for p in self.parts], tail_key, self.buffered)

    def complete(self) -> None:
        self._take_sent(wait=len(self.sending))
        if self.buffered or not self.parts:
            self.parts.append(self._send_part(self.file, self.path, len(self.parts) + 1))
            self.buffered = 0
        s3 = self.s3
        complete_parts(s3, self.key, self.handle, self.parts)
        with contextlib.suppress(BotoCoreError, ClientError, OSError):
            s3.delete_prefix(keys.upload_prefix(self.upload_id))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._take_sent(wait=len(self.sending))
        self.pool.shutdown(wait=True)
        with contextlib.suppress(OSError):
            self.file.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


# --- direct uploads: the client PUTs each part to the store with a presigned URL


def presigned_part_urls(
    storage: S3Storage, key: str, handle: str, count: int, seconds: int
) -> list[str]:
    """A URL per part (1..count) a client PUTs that part's bytes to, for ``seconds``."""
    params = {"Bucket": storage.bucket, "Key": storage._object_key(key), "UploadId": handle}
    with translated(storage, key):
        return [
            storage.client.generate_presigned_url(
                "upload_part", Params={**params, "PartNumber": n}, ExpiresIn=seconds
            )
            for n in range(1, count + 1)
        ]


def listed_parts(storage: S3Storage, key: str, handle: str) -> list[list[Any]]:
    """The parts the store holds of the upload, as [number, etag, size], by number."""
    found: list[list[Any]] = []
    pages = storage.client.get_paginator("list_parts").paginate(
        Bucket=storage.bucket, Key=storage._object_key(key), UploadId=handle
    )
    with translated(storage, key):
        for page in pages:
            found += [[p["PartNumber"], p["ETag"], int(p["Size"])] for p in page.get("Parts", ())]
    return sorted(found)


def complete_parts(storage: S3Storage, key: str, handle: str, parts: list[list[Any]]) -> None:
    """The object made of ``parts``; a second completion (a host died before recording the
    first) finds the object there."""
    try:
        with translated(storage, key):
            storage.client.complete_multipart_upload(
                Bucket=storage.bucket,
                Key=storage._object_key(key),
                UploadId=handle,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in parts]},
            )
    except ClientError as exc:
        if error_code(exc) != "NoSuchUpload" or not storage.exists(key):
            raise
