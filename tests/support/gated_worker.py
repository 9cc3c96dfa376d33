"""worker.py whose chunk encodes wait at a gate until a file exists (a test hook).

For tests that must hold a video job in the middle of its pipeline for as long as they need
(tests/test_deploys.py): every ``video.encode_chunk`` heartbeats as usual but starts encoding
only once the file named by SPOOL_TEST_GATE_FILE exists. It prints ``gate: waiting`` when the
first encode reaches the gate. Usage: python -m tests.support.gated_worker ARGS (the same
arguments as worker.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import worker
from spool.media import chunks
from spool.temporal import exit_process

GATE_POLL_SECONDS = 0.2


def gated(encode):
    gate = Path(os.environ["SPOOL_TEST_GATE_FILE"])

    async def encode_after_gate(*args, **kwargs):
        print("gate: waiting", flush=True)
        while not gate.exists():  # noqa: ASYNC110 - another process makes the file
            await asyncio.sleep(GATE_POLL_SECONDS)
        return await encode(*args, **kwargs)

    return encode_after_gate


if __name__ == "__main__":
    chunks.encode_chunk = gated(chunks.encode_chunk)
    exit_process(worker.main(sys.argv[1:]))
