"""Fetch or build, once, every server the stack and the suite start, into ``.cache/``.

``make test`` runs this before the suite's parallel processes start, so they find
Elasticsearch unpacked, the S3Proxy jar copied, Mailpit and temporal-server built instead of
each doing it at once (Mailpit's ``go install`` alone is about 1.5 min of CPU on a fresh
clone, temporal-server's several minutes). Each step is
safe to run concurrently and does nothing when its result is already there.

    python -m devstack.fetch
"""

from __future__ import annotations

import sys
import time

from devstack import elasticsearch, mailpit, s3proxy, temporal_server
from devstack.proc import StackError

STEPS = {
    "Elasticsearch": elasticsearch.ensure_distribution,
    "S3Proxy": s3proxy.ensure_jar,
    "Mailpit": mailpit.ensure_binary,
    # make cluster's and the cluster tests' Temporal server: several minutes of go install.
    "temporal-server": temporal_server.ensure_release,
}


def main() -> int:
    failed = 0
    for name, ensure in STEPS.items():
        started = time.monotonic()
        try:
            path = ensure()
        except StackError as exc:
            # Not fatal here: the tests that need this server report it (and fail in CI).
            print(f"{name}: not available: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {path} ({time.monotonic() - started:.1f} s)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
