"""One upload in a fresh interpreter, measured: the peak RSS is a process's, so nothing else
a test session did may count against the upload. Configured by SPOOL_* variables.

Usage: python -m tests.support.upload_child stream|file KEY SOURCE MEGABYTES
Prints {"baseline": bytes, "peak": bytes, "sha256": digest of a streamed object or null}.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from spool.config import Settings
from spool.storage import ObjectStorage, open_storage

MiB = 1024 * 1024


def main() -> None:
    """Upload, then print one JSON line of figures."""
    mode, key, source, megabytes = sys.argv[1:5]
    storage = open_storage(Settings(_env_file=None))
    storage.exists("warm/up")  # the first request loads botocore's lazily built parts
    baseline = current_rss_bytes()
    if mode == "stream":
        digest = stream_random_object(storage, key, int(megabytes))
    else:
        storage.put_file(source, key)
        digest = None
    print(json.dumps({"baseline": baseline, "peak": peak_rss_bytes(), "sha256": digest}))


def current_rss_bytes() -> int:
    return _proc_status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """The high-water mark of this process image. Not getrusage's ru_maxrss: Linux carries
    that over exec from the forked copy of the parent, so it would report pytest's size."""
    return _proc_status_bytes("VmHWM")


def _proc_status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def stream_random_object(storage: ObjectStorage, key: str, megabytes: int) -> str:
    """Write ``megabytes`` MiB of random data in 1 MiB chunks; return its sha256."""
    digest = hashlib.sha256()
    with storage.writer(key) as out:
        for _ in range(megabytes):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    main()
