"""Resumable writes: an object received over many requests, by any process, that becomes
visible under its key whole once its last byte is in (docs/storage.md, resumable uploads).

What the store holds between requests is described by a ``Held`` (the caller keeps it in the
database, spool/db/uploads.py), never by a process's memory: a request on another host, or
after a restart, resumes from it. Bytes a request wrote past the last recorded ``Held`` are
dropped or overwritten by the next one, so a process killed mid-write leaves nothing wrong.

- local directory: one temporary file under ``.incoming/``, cut back to the recorded length
  when a request resumes, renamed into place when complete;
- S3 (``s3_resumable``): a multipart upload; whole parts are sent as they fill up, the bytes
  short of a part wait on the API's scratch disk and, between requests, in a tail object.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from spool.storage.base import KeyNotFound, ObjectStorage
from spool.storage.local import INCOMING, LocalStorage


@dataclass(frozen=True)
class Held:
    """The bytes an upload has made durable: ``received`` in all, as ``parts`` ([number,
    etag, size] of the store's multipart upload) and a ``tail`` object of ``tail_bytes``."""

    received: int
    parts: list[list[Any]] = field(default_factory=list)
    tail_key: str | None = None
    tail_bytes: int = 0


class ResumableWrite(ABC):
    """One request's bytes, appended at the upload's recorded offset. Used from one thread
    at a time; ``close`` always follows."""

    @abstractmethod
    def write(self, data: bytes | bytearray) -> Held | None:
        """Append; a ``Held`` when more bytes became durable than the last one said."""

    @abstractmethod
    def finish(self) -> Held:
        """Make every byte written durable, short of completing the object."""

    @abstractmethod
    def complete(self) -> None:
        """Every byte is in: make the object visible under its key."""

    @abstractmethod
    def close(self) -> None:
        """Drop what this request kept on local disk (never raises)."""


class ResumableStore(ABC):
    @abstractmethod
    def begin(self, upload_id: str, key: str) -> str | None:
        """Start an upload bound for ``key``; the store's handle for it, if it has one."""

    @abstractmethod
    def resume(
        self, upload_id: str, key: str, handle: str | None, held: Held, scratch: Path
    ) -> ResumableWrite:
        """A write continuing after ``held`` (raises KeyNotFound when the store no longer
        has the upload: swept, or dropped)."""

    @abstractmethod
    def drop(self, upload_id: str, key: str, handle: str | None) -> None:
        """Free whatever the upload holds; harmless when repeated."""

    def forget_tail(self, tail_key: str) -> None:
        """A tail object no recorded ``Held`` names any more (none locally)."""
        return None


def open_resumable(storage: ObjectStorage, part_bytes: int) -> ResumableStore:
    if isinstance(storage, LocalStorage):
        return LocalResumable(storage, part_bytes)
    from spool.storage.s3 import S3Storage
    from spool.storage.s3_resumable import S3Resumable

    assert isinstance(storage, S3Storage), f"no resumable writes for {storage.describe()}"
    return S3Resumable(storage, part_bytes)


class LocalResumable(ResumableStore):
    """One ``.incoming/tus-<id>.part`` file per upload: swept like any abandoned write once
    nobody has written it for ``SPOOL_STORAGE_ABANDONED_WRITE_SECONDS``."""

    def __init__(self, storage: LocalStorage, part_bytes: int) -> None:
        self.storage = storage
        self.part_bytes = part_bytes

    def _partial(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise KeyNotFound(f"no upload {upload_id!r}")
        return self.storage.root / INCOMING / f"tus-{upload_id}.part"

    def begin(self, upload_id: str, key: str) -> str | None:
        path = self._partial(upload_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return None

    def resume(
        self, upload_id: str, key: str, handle: str | None, held: Held, scratch: Path
    ) -> ResumableWrite:
        path = self._partial(upload_id)
        try:
            fh = path.open("r+b")
        except FileNotFoundError:
            raise KeyNotFound(f"upload {upload_id!r} is no longer in the store") from None
        return _LocalWrite(fh, path, self.storage._path(key), held.received, self.part_bytes)

    def drop(self, upload_id: str, key: str, handle: str | None) -> None:
        self._partial(upload_id).unlink(missing_ok=True)


class _LocalWrite(ResumableWrite):
    def __init__(self, fh: BinaryIO, path: Path, final: Path, offset: int, every: int) -> None:
        self.fh, self.path, self.final = fh, path, final
        self.received = self.durable = offset
        self.every = every
        fh.truncate(offset)  # what a killed request wrote past the record is not the upload's
        fh.seek(offset)

    def write(self, data: bytes | bytearray) -> Held | None:
        self.fh.write(data)
        self.received += len(data)
        return self.finish() if self.received - self.durable >= self.every else None

    def finish(self) -> Held:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.durable = self.received
        return Held(self.received)

    def complete(self) -> None:
        self.finish()
        self.fh.close()
        self.final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, self.final)

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()
