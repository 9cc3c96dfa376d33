"""Start, watch and stop the child processes of the embedded stack."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from spool.process import with_parent_death


class StackError(RuntimeError):
    """A part of the embedded stack could not start; the message says which and why."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def require_free_port(port: int, what: str) -> None:
    if port_in_use(port):
        raise StackError(
            f"port {port} is already in use, so {what} cannot start there "
            f"(is another `make up` running? find it with: lsof -i :{port})"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int,
    timeout: float,
    proc: subprocess.Popen | None = None,
    what: str = "service",
    log_path: Path | None = None,
) -> None:
    wait_until(lambda: port_in_use(port), timeout, proc, what, log_path)


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    proc: subprocess.Popen | None,
    what: str,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode}{_log_tail(log_path)}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.2)
    raise StackError(f"{what} was not ready after {timeout:.0f}s{_log_tail(log_path)}")


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_path}:\n" + "\n".join(tail)


def start_process(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> subprocess.Popen:
    """Start argv in its own process group, output to log_path. It gets SIGTERM when the
    thread that started it dies, set by setpriv, which execs into argv (no Python runs in the
    child between fork and exec: spool/process.py says why)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    try:
        return subprocess.Popen(
            # SIGTERM, not SIGKILL: servers still get to shut down cleanly if we die.
            with_parent_death(list(argv), signal.SIGTERM),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            user=user,
        )
    finally:
        log.close()


def stop_process(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
