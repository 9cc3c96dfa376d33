"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Call in a child between fork and exec: the kernel sends it `sig` when its parent dies,
    even by SIGKILL, so nothing keeps running unsupervised."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, sig)


def single_threaded_blas() -> None:
    """Load OpenBLAS without its thread pool. Call before numpy is first imported.

    A process that runs Whisper (numpy/OpenBLAS in faster-whisper's feature extraction) and
    also forks children (ffmpeg, started with a preexec_fn) hangs for good when a fork lands
    while OpenBLAS's worker threads are busy: OpenBLAS's fork handler never returns and every
    thread, timeouts included, stops. Without the pool there is nothing to wait for. The
    matrix it multiplies is small and CTranslate2 keeps its own threads, so nothing is lost.
    """
    if "numpy" in sys.modules and "OPENBLAS_NUM_THREADS" not in os.environ:
        raise RuntimeError("single_threaded_blas() must run before numpy is imported")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
