"""Object storage: files pass between steps, hosts and the API only through here.

``open_storage(settings)`` picks the backend: a local directory (the default, for one
machine) or any S3-compatible store (``SPOOL_STORAGE_URL=s3://bucket/prefix``). No caller
outside this package builds a path; the key layout lives in ``spool.storage.keys``.
"""

from __future__ import annotations

from spool.config import Settings
from spool.storage.base import (
    InvalidKey,
    KeyNotFound,
    ObjectInfo,
    ObjectStorage,
    PendingObject,
    StorageUnavailable,
    check_key,
)
from spool.storage.local import LocalStorage

__all__ = [
    "InvalidKey",
    "KeyNotFound",
    "LocalStorage",
    "ObjectInfo",
    "ObjectStorage",
    "PendingObject",
    "StorageUnavailable",
    "check_key",
    "open_storage",
]


def open_storage(settings: Settings) -> ObjectStorage:
    url = settings.storage_url
    if url is None or url == "":
        return LocalStorage(settings.resolved_storage_dir)
    if url.startswith("s3://"):
        from spool.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    if url.startswith("file://"):
        return LocalStorage(url.removeprefix("file://"))
    raise ValueError(
        f"SPOOL_STORAGE_URL={url!r}: use s3://bucket/prefix, file:///path, "
        "or leave it unset for the local directory"
    )
