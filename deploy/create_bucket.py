"""One-shot job: create the bucket named by SPOOL_STORAGE_URL; exit 0 once it exists.

Baked into the Spool image as /opt/spool/create_bucket.py and run before any Spool process
starts, with the same settings (SPOOL_STORAGE_URL, SPOOL_S3_*) and the same storage code Spool
uses, so a wrong endpoint or key fails here, once, in one line, instead of in every upload.

Exit codes: 0 the bucket exists (created now or before); 1 it could not be created.
"""

from __future__ import annotations

import sys
import time

from botocore.exceptions import BotoCoreError

from spool.config import Settings
from spool.storage.base import StorageUnavailable
from spool.storage.s3 import S3Storage

# The store's container can report healthy a moment before its S3 gateway takes requests.
WAIT_SECONDS = 120.0


def ensure_bucket(settings: Settings, wait_seconds: float = WAIT_SECONDS) -> str:
    """Create the bucket unless it is there; the line that says where."""
    if not (settings.storage_url or "").startswith("s3://"):
        raise ValueError(f"SPOOL_STORAGE_URL={settings.storage_url!r}: expected s3://bucket/...")
    storage = S3Storage.from_settings(settings)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            storage.ensure_bucket()
            return f"create_bucket: {storage.describe()}: bucket ready"
        except StorageUnavailable as exc:
            # Only "cannot connect" is worth waiting for; a refused key or a bad bucket name
            # will not get better.
            unreachable = isinstance(exc.__cause__, BotoCoreError)
            if not unreachable or time.monotonic() >= deadline:
                raise
            time.sleep(1)


def main() -> int:
    try:
        print(ensure_bucket(Settings()), flush=True)
    except Exception as exc:  # noqa: BLE001 - one line for the operator, not a traceback
        print(f"create_bucket: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
