"""The object storage interface: the only door to files for every Spool process.

Two promises every backend keeps:
- atomic visibility: an object appears under its final key whole or not at all (a reader or a
  retried step never sees half a file), and a failed or abandoned write leaves nothing;
- keys are checked: anything that could escape the store (``..``, absolute paths,
  backslashes, NUL) is refused with InvalidKey before any I/O.

The interface is synchronous (boto3 and the file system are); async callers use
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READ_CHUNK = 256 * 1024


class InvalidKey(ValueError):
    """A key that Spool would never make: refused before touching the store."""


class KeyNotFound(FileNotFoundError):
    """No object under that key."""


class StorageUnavailable(RuntimeError):
    """The store did not answer (down, unreachable, refused credentials)."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidKey(f"invalid storage key {key!r}")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid storage key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix is a key with an optional trailing slash; listing '' (everything) is refused."""
    check_key(prefix.rstrip("/"))
    return prefix.rstrip("/") + "/"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # strong validator: changes whenever the bytes under the key change
    modified: float  # seconds since the epoch


class PendingObject(ABC):
    """An object being written: ``write`` chunks, then ``commit`` (visible under the key) or
    ``abort`` (nothing left). Memory use is bounded by the backend's part size."""

    key: str
    bytes_written: int = 0

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


class ObjectStorage(ABC):
    """Files by key. Every key is checked; every write is atomic."""

    # --- writing -----------------------------------------------------------------------

    @abstractmethod
    def begin_write(self, key: str) -> PendingObject:
        """Start streaming an object; the caller must commit or abort it."""

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[PendingObject]:
        """Stream an object; committed when the block exits cleanly, aborted otherwise."""
        pending = self.begin_write(key)
        try:
            yield pending
        except BaseException:
            pending.abort()
            raise
        pending.commit()

    @abstractmethod
    def put_file(self, local_path: str | Path, key: str) -> None:
        """Upload a local file (large files in parts), visible only once complete."""

    def put_bytes(self, data: bytes, key: str) -> None:
        with self.writer(key) as out:
            out.write(data)

    # --- reading -----------------------------------------------------------------------

    @abstractmethod
    def get_to(self, key: str, local_path: str | Path) -> None:
        """Download the object to a local file (raises KeyNotFound)."""

    @abstractmethod
    def iter_range(
        self, key: str, first: int = 0, last: int | None = None, chunk_size: int = READ_CHUNK
    ) -> Iterator[bytes]:
        """The bytes ``first..last`` (inclusive; ``last`` None = to the end), in chunks.

        Raises KeyNotFound before yielding anything when the key is missing."""

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_range(key))

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, validator and time of the object (raises KeyNotFound)."""

    def size(self, key: str) -> int:
        return self.stat(key).size

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except KeyNotFound:
            return False
        return True

    @abstractmethod
    def list_prefix(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder-like prefix: ``videos/abc``), sorted."""

    # --- deleting ----------------------------------------------------------------------

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error (deletes are retried)."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix``; how many there were. Idempotent: a retry
        after a crash removes what is left."""
        keys = self.list_prefix(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def abort_writes_under(self, prefix: str) -> int:
        """Drop the writes to keys under ``prefix`` begun and not finished, whatever their
        age (a deleted video's uploads in flight: their commit then fails); how many. A store
        whose writes name no key until they are committed has none to drop (the local
        directory's temporary files are swept by age)."""
        check_prefix(prefix)
        return 0

    @abstractmethod
    def sweep_abandoned_writes(self, begun_before: float) -> int:
        """Drop the writes begun before ``begun_before`` (epoch seconds) and never finished:
        their bytes, held by the store and never to become an object. A writer killed mid-write
        leaves them, and so does an abort that could not reach the store. Returns how many."""

    # --- the rest ----------------------------------------------------------------------

    def presigned_url(self, key: str, seconds: int) -> str | None:
        """A URL a client can GET the object from directly for ``seconds``; None where the
        backend has no such thing (the local directory)."""
        check_key(key)
        return None

    @abstractmethod
    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers (for readiness checks)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the objects are, for logs and error messages (no credentials)."""
