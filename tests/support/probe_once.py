"""The probe of one upload in a worker process of its own, which reports what it cost.

Usage: python -m tests.support.probe_once FILE DATA_DIR [SETTINGS_JSON]

Stores FILE as an upload and runs the registered ``video.probe`` activity on it, as a worker
would. Prints one JSON object: ``outcome`` (accepted / refused), ``message``, ``seconds`` and
``memory_growth_bytes``, the growth of this process's peak resident memory over the probe (its
peak once the activities are built is the baseline): what the upload made a worker hold.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.video import VideoActivitySet
from spool.config import Settings
from spool.models.video import ProbeInput
from spool.storage import keys


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


async def main(path: Path, data_dir: Path, overrides: dict[str, object]) -> dict[str, object]:
    acts = VideoActivitySet.from_settings(
        Settings.model_validate({"data_dir": data_dir, **overrides})
    )
    key = keys.source_key("hostile")
    acts.files.storage.put_file(path, key)
    before = peak_rss_bytes()
    started = time.monotonic()
    outcome, message = "accepted", ""
    try:
        await ActivityEnvironment().run(acts.probing.probe, ProbeInput("hostile", key))
    except ApplicationError as exc:
        outcome, message = "refused", exc.message
    return {
        "outcome": outcome,
        "message": message,
        "seconds": time.monotonic() - started,
        "memory_growth_bytes": peak_rss_bytes() - before,
    }


if __name__ == "__main__":
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    report = asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), extra))
    print(json.dumps(report), flush=True)
