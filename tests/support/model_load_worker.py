"""worker.py with one line printed per Whisper model load, so a test can count the loads.

Usage: python -m tests.support.model_load_worker WORKER-ARGS
"""

from __future__ import annotations

import sys

from spool import whisper

LOAD_LINE = "whisper-model-load"


def main() -> int:
    """worker.main with WORKER-ARGS, after hooking model loads to print LOAD_LINE."""
    import worker

    whisper.on_model_load(lambda model: print(f"{LOAD_LINE} {model}", flush=True))
    return worker.main(sys.argv[1:])


if __name__ == "__main__":
    from spool.temporal import exit_process

    exit_process(main())
