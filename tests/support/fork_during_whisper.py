"""Regression check, run in its own process: Whisper keeps working while the process forks.

A worker transcribes on threads while it starts ffmpeg children (fork + preexec_fn). With
OpenBLAS's thread pool, a fork during feature extraction hung the whole process. This sets
the process up exactly as worker.py does, then does both at once; it exits 0 when every
transcription finished. The caller enforces the deadline.

    python -m tests.support.fork_during_whisper AUDIO.wav
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import worker


def main(wav: str) -> int:
    with contextlib.suppress(SystemExit):
        worker.main(["--help"])  # worker.py's process set-up, then argparse exits
    from spool import whisper
    from spool.config import Settings

    stop = threading.Event()

    def fork_repeatedly() -> None:
        while not stop.is_set():
            subprocess.run(["true"], preexec_fn=lambda: None, check=True)

    forker = threading.Thread(target=fork_repeatedly, daemon=True)
    forker.start()
    try:
        for _ in range(3):
            with ThreadPoolExecutor(2) as pool:
                runs = [pool.submit(whisper.transcribe, wav, settings=Settings()) for _ in range(2)]
                if not all(run.result() for run in runs):
                    return 1
    finally:
        stop.set()
    print("all transcriptions finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
