"""Child processes that never outlive the process that started them.

Nothing here runs Python in a child between fork and exec: a ``preexec_fn`` forces a real
fork() of a multi-threaded interpreter and runs Python in the copy, where any lock another
thread held at the fork (the allocator's, OpenBLAS's pool, logging's) stays locked for good.
Without one, CPython starts children with vfork() + exec, and the settings a child needs are
applied by small util-linux programs that exec into the real command, so its pid, process
group and command line are the real command's.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


class ToolMissing(RuntimeError):
    """A program Spool starts (ffmpeg, ffprobe, or a util-linux wrapper) is not installed:
    the host is misconfigured, so the step retries (elsewhere), never blaming the input."""


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Call in a child between fork and exec: the kernel sends it `sig` when its parent dies,
    even by SIGKILL, so nothing keeps running unsupervised.

    Only for single-threaded callers (a test's helper process); everything else uses
    ``with_parent_death`` so no Python runs in the child.
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, sig)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(
            f"{name} (from util-linux) is not installed; Spool needs it to start "
            "child processes safely (scripts/install-system.sh installs it)"
        )
    return path


def with_parent_death(argv: list[str], sig: signal.Signals = signal.SIGKILL) -> list[str]:
    """argv run through ``setpriv --pdeathsig``: the kernel sends the command ``sig`` when the
    thread that started it dies (even by SIGKILL). setpriv sets it and execs argv, so the pid
    is argv's own."""
    return [_tool("setpriv"), "--pdeathsig", sig.name.removeprefix("SIG"), "--", *argv]


def with_limits(argv: list[str], *, address_space_bytes: int) -> list[str]:
    """argv run through ``prlimit``: an address-space limit and no core dumps, set by prlimit
    on itself before it execs argv (limits survive exec)."""
    return [_tool("prlimit"), f"--as={address_space_bytes}", "--core=0", "--", *argv]


def with_nice(argv: list[str], increment: int) -> list[str]:
    """argv run through ``nice``: every thread the command starts has that much lower a CPU
    priority (set before exec, so no thread escapes it)."""
    return [_tool("nice"), "-n", str(increment), "--", *argv]


def lower_session_priority(pid: int, nice: int) -> bool:
    """Give the scheduling group of ``pid``'s session (Linux autogroup) the nice value
    ``nice``; False where there are no autogroups or it is not allowed. With autogroups on,
    a command started in its own session competes as a whole with every other session, so
    its threads' own nice values would not lower its share against the worker's."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
    except OSError:
        return False
    return True


def single_threaded_blas() -> None:
    """Load OpenBLAS without its thread pool. Call before numpy is first imported.

    A process that runs Whisper (numpy/OpenBLAS in faster-whisper's feature extraction) and
    also forks children hangs for good when a real fork() lands while OpenBLAS's worker
    threads are busy: OpenBLAS's fork handler never returns and every thread, timeouts
    included, stops. Children are now started without a preexec_fn (vfork, no fork handlers),
    but anything else that forks would meet the same hang; without the pool there is nothing
    to wait for. The matrix it multiplies is small and CTranslate2 keeps its own threads, so
    nothing is lost.
    """
    if "numpy" in sys.modules and "OPENBLAS_NUM_THREADS" not in os.environ:
        raise RuntimeError("single_threaded_blas() must run before numpy is imported")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
