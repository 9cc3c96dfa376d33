"""Object storage: files pass between steps through here, never through a worker's disk.

Keys are made by Spool (``videos/{video_id}/720p.mp4``), never by clients; anything that could
escape the root (``..``, absolute paths, backslashes) is refused anyway.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from spool.config import Settings


class InvalidKey(ValueError):
    pass


def check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid storage key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


class ObjectStorage(Protocol):
    @contextlib.contextmanager
    def _atomic_write(self, key: str) -> Iterator[Path]:
        """A temporary path beside the key's; renamed into place only if the block succeeds,
        so a reader (or a retried step) never sees a half-written file under a final key."""
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex}")
        try:
            yield tmp
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_file(self, local_path: str | Path, key: str) -> None:
        with self._atomic_write(key) as tmp:
            shutil.copyfile(local_path, tmp)

    def put_bytes(self, data: bytes, key: str) -> None:
        with self._atomic_write(key) as tmp:
            tmp.write_bytes(data)

    def get_to(self, key: str, local_path: str | Path) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def path_for(self, key: str) -> Path: ...
    def list_prefix(self, prefix: str) -> list[str]: ...


class LocalStorage:
    """A directory tree; a write is a copy to a temporary name then an atomic rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents:
            raise InvalidKey(f"invalid storage key {key!r}")
        return path

    def put_file(self, local_path: str | Path, key: str) -> None:
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex}")
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_bytes(self, data: bytes, key: str) -> None:
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get_to(self, key: str, local_path: str | Path) -> None:
        shutil.copyfile(self.path_for(key), local_path)

    def open(self, key: str) -> BinaryIO:
        return self.path_for(key).open("rb")

    def size(self, key: str) -> int:
        return self.path_for(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def list_prefix(self, prefix: str) -> list[str]:
        base = self.path_for(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_prefix(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)


def open_storage(settings: Settings) -> LocalStorage:
    root = settings.resolved_storage_dir
    root.mkdir(parents=True, exist_ok=True)
    return LocalStorage(root)
