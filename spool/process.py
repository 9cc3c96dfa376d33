"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import ctypes
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
