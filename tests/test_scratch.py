"""Scratch roots: a killed worker's leftovers are swept at the next start, a live one's never."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spool import scratch

pytestmark = pytest.mark.unit

MAKE_ROOT = """
import sys
from spool import scratch
step = scratch.new_dir("spool-video-")
(step / "half-made.mp4").write_bytes(b"x" * 1000)
print(step, flush=True)
sys.stdin.read()  # hold the root (and its lock) until told to go
"""


def start_owner(tmp: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MAKE_ROOT],
        env={**os.environ, "TMPDIR": str(tmp)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    step = Path(proc.stdout.readline().strip())
    assert step.is_dir()
    return proc, step.parent


def test_a_killed_owners_root_is_swept_and_a_live_ones_kept(tmp_path):
    dead, dead_root = start_owner(tmp_path)
    live, live_root = start_owner(tmp_path)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        assert dead_root.exists()  # a killed process cleans nothing up itself
        removed = scratch.sweep_stale(tmp_path)
        assert removed == [dead_root] and not dead_root.exists()
        assert (live_root / scratch.LOCK_NAME).exists() and live_root.exists()
    finally:
        live.kill()
        live.wait()
    assert scratch.sweep_stale(tmp_path) == [live_root]


def test_a_root_still_being_made_is_not_swept(tmp_path):
    young = tmp_path / f"{scratch.PREFIX}young"
    young.mkdir()  # no lock file yet: its owner may be between mkdtemp and the lock
    old = tmp_path / f"{scratch.PREFIX}old"
    old.mkdir()
    hour_ago = time.time() - scratch.UNLOCKED_GRACE_SECONDS - 60
    os.utime(old, (hour_ago, hour_ago))
    assert scratch.sweep_stale(tmp_path) == [old]
    assert young.exists()


def test_release_removes_this_processes_root(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
    step = scratch.new_dir("spool-video-")
    root = step.parent
    assert scratch.sweep_stale(tmp_path) == []  # our own root is alive
    scratch.release()
    assert not root.exists()
