"""Object storage in a local directory: the default for one machine (``make demo``).

A write goes to a temporary file under ``.incoming/`` in the same file system, then one
``os.replace`` makes it visible under its key: whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from spool.storage.base import (
    READ_CHUNK,
    InvalidKey,
    KeyNotFound,
    ObjectInfo,
    ObjectStorage,
    PendingObject,
    StorageUnavailable,
    check_key,
    check_prefix,
)

INCOMING = ".incoming"


class _LocalPending(PendingObject):
    def __init__(self, storage: LocalStorage, key: str) -> None:
        self.key = key
        self._final = storage._path(key)
        incoming = storage.root / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        self._tmp = incoming / f"{uuid.uuid4().hex}.part"
        self._fh: BinaryIO | None = self._tmp.open("wb")
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        assert self._fh is not None, "write after commit or abort"
        self._fh.write(data)
        self.bytes_written += len(data)

    def commit(self) -> None:
        assert self._fh is not None, "commit after commit or abort"
        self._fh.close()
        self._fh = None
        try:
            self._final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, self._final)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)


class LocalStorage(ObjectStorage):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents or path.relative_to(self.root).parts[0] == INCOMING:
            raise InvalidKey(f"invalid storage key {key!r}")
        return path

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise KeyNotFound(f"no object {key!r} in {self.describe()}")
        return path

    def begin_write(self, key: str) -> PendingObject:
        return _LocalPending(self, key)

    def put_file(self, local_path: str | Path, key: str) -> None:
        with self.writer(key) as out, open(local_path, "rb") as src:
            while chunk := src.read(1024 * 1024):
                out.write(chunk)

    def get_to(self, key: str, local_path: str | Path) -> None:
        shutil.copyfile(self._existing(key), local_path)

    def iter_range(
        self, key: str, first: int = 0, last: int | None = None, chunk_size: int = READ_CHUNK
    ) -> Iterator[bytes]:
        fh = self._existing(key).open("rb")  # opened before the first yield: KeyNotFound now
        return self._read_span(fh, first, last, chunk_size)

    @staticmethod
    def _read_span(fh: BinaryIO, first: int, last: int | None, chunk_size: int) -> Iterator[bytes]:
        with fh:
            fh.seek(first)
            remaining = None if last is None else last - first + 1
            while remaining is None or remaining > 0:
                data = fh.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not data:
                    return
                if remaining is not None:
                    remaining -= len(data)
                yield data

    def stat(self, key: str) -> ObjectInfo:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            st = None
        if st is None or not S_ISREG(st.st_mode):  # a folder is not an object
            raise KeyNotFound(f"no object {key!r} in {self.describe()}")
        # Every write is a new inode (os.replace), so inode + mtime + size changes with it.
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"',
            modified=st.st_mtime,
        )

    def list_prefix(self, prefix: str) -> list[str]:
        base = self._path(check_prefix(prefix).rstrip("/"))
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop folders the delete emptied, so a removed video leaves no directory behind.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def sweep_abandoned_writes(self, begun_before: float) -> int:
        """Temporary files under .incoming/ last written before ``begun_before``."""
        swept = 0
        for part in (self.root / INCOMING).glob("*.part"):
            try:
                if part.stat().st_mtime < begun_before:
                    part.unlink()
                    swept += 1
            except FileNotFoundError:  # committed or aborted meanwhile
                continue
        return swept

    def check(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"{self.describe()} is not writable")

    def describe(self) -> str:
        return f"local directory {self.root}"
