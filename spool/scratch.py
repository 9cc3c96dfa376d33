"""Scratch space for steps: a private folder per worker process, cleared of dead ones.

Each activity works in a folder of its own under its process's scratch root
(``$TMPDIR/spool-scratch-*``), removed when the activity ends however it ends. A process that
is killed cannot clean up, so each root holds a lock for as long as its process lives, and a
worker starting on the same machine removes every root whose lock nobody holds: a crash
leaves nothing behind for longer than the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

PREFIX = "spool-scratch-"
LOCK_NAME = ".owner.lock"
# A root without its lock file may be one that another process is creating right now.
UNLOCKED_GRACE_SECONDS = 3600

log = logging.getLogger("spool.scratch")
_lock = threading.Lock()
_root: Path | None = None
_owner: IO | None = None


def scratch_root() -> Path:
    """This process's scratch root, made (and locked) on first use."""
    global _root, _owner
    with _lock:
        if _root is None or not _root.is_dir():
            root = Path(tempfile.mkdtemp(prefix=PREFIX))
            owner = (root / LOCK_NAME).open("w")
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _root, _owner = root, owner
        return _root


def new_dir(prefix: str) -> Path:
    """A fresh private folder for one step."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root()))


def release() -> None:
    """Remove this process's scratch root (a clean shutdown; a crash leaves it to the sweep)."""
    global _root, _owner
    with _lock:
        if _root is not None:
            shutil.rmtree(_root, ignore_errors=True)
        if _owner is not None:
            _owner.close()
        _root = _owner = None


def sweep_stale(parent: Path | None = None) -> list[Path]:
    """Remove the scratch roots under ``parent`` (default: the temp dir) whose owner died."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for root in parent.glob(f"{PREFIX}*"):
        if root == _root or not root.is_dir():
            continue
        if _owner_alive(root):
            continue
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    if removed:
        log.info("removed %d scratch folder(s) left by stopped workers", len(removed))
    return removed


def _owner_alive(root: Path) -> bool:
    lock_path = root / LOCK_NAME
    try:
        fh = lock_path.open("rb")  # never creates it: a missing lock means "being made"
    except FileNotFoundError:
        try:
            age = time.time() - root.stat().st_mtime
        except FileNotFoundError:
            return True  # gone already
        return age < UNLOCKED_GRACE_SECONDS
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        with contextlib.suppress(OSError):
            fcntl.flock(fh, fcntl.LOCK_UN)
        return False
