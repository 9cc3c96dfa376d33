"""One webhook delivery in a process of its own, which reports what it cost.

Usage: python -m tests.support.deliver_once URL DEADLINE_SECONDS READ_TIMEOUT_SECONDS

Prints one JSON object: ``outcome`` (delivered / failed / refused), ``error``, ``seconds`` and
``memory_growth_bytes``, the growth of this process's peak resident memory over the delivery
(its peak after the imports is the baseline): what the receiver made a worker hold.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from pydantic import SecretStr

from spool import webhooks
from spool.config import Settings

SECRET = "whsec_" + "c3Bvb2wtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main(url: str, deadline: float, read_timeout: float) -> dict[str, object]:
    settings = Settings(
        webhook_secret=SecretStr(SECRET),
        webhook_allowlist=["127.0.0.1/32"],
        webhook_deadline_seconds=deadline,
        webhook_timeout_seconds=read_timeout,
    )
    delivery = webhooks.Delivery(url, "msg_hostile", "video.ready", {"video_id": "v"})
    before = peak_rss_bytes()
    started = time.monotonic()
    outcome, error = "delivered", ""
    try:
        webhooks.send(settings, delivery)
    except webhooks.WebhookFailed as exc:
        outcome, error = "failed", str(exc)
    except webhooks.WebhookRefused as exc:
        outcome, error = "refused", str(exc)
    return {
        "outcome": outcome,
        "error": error,
        "seconds": time.monotonic() - started,
        "memory_growth_bytes": peak_rss_bytes() - before,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))), flush=True)
