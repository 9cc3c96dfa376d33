"""A throwaway PostgreSQL server from Debian's `postgresql` package, for tests and benchmarks."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from devstack.proc import StackError, start_process, stop_process, wait_until


def find_pg_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise StackError("PostgreSQL server not installed (Debian package `postgresql`)")
    return Path(candidates[0]).parent


class PostgresServer:
    """initdb into a private directory and run postgres on a loopback port; trust auth."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.home: Path | None = None
        self.proc = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://spool@127.0.0.1:{self.port}/spool"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        bin_dir = find_pg_bin()
        # The server refuses to run as root; Debian's package provides the `postgres` user.
        user = "postgres" if os.geteuid() == 0 else None
        self.home = Path(tempfile.mkdtemp(prefix="spool-pg-"))
        if user:
            uid = pwd.getpwnam(user).pw_uid
            os.chown(self.home, uid, -1)
        data = self.home / "data"
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "spool",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
        self._run_postgres(user, timeout)
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "spool",
                "spool",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
        return self

    def _run_postgres(self, user: str | None, timeout: float) -> None:
        """Run the server on the data directory already in home; wait until it accepts."""
        self.proc = start_process(
            [
                str(find_pg_bin() / "postgres"),
                "-D",
                str(self.home / "data"),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                str(self.home),
                "-c",
                "fsync=off",
            ],
            self.log_path,
            user=user,
        )
        wait_until(self._ready, timeout, self.proc, "PostgreSQL", self.log_path)

    def restart(
        self,
        timeout: float = 60.0,
        sig: int = signal.SIGINT,
        while_down: Callable[[], None] | None = None,
    ) -> None:
        """Stop the server and run it again on the same data and port: a restart, not a new
        database. SIGINT is PostgreSQL's fast shutdown (open sessions are cut, as clients see
        in a real restart); SIGKILL makes it a crash, recovered at start. ``while_down`` runs
        between the two, so a test can hold the outage until it has seen what it waits for."""
        if self.home is None:
            raise StackError("PostgreSQL was never started, so there is nothing to restart")
        if self.proc is not None and self.proc.poll() is None:
            # The postmaster only: it shuts its children down in order.
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if while_down is not None:
            while_down()
        # Call from a thread that outlives the server: its parent-death signal is tied to
        # the thread that starts it.
        self._run_postgres("postgres" if os.geteuid() == 0 else None, timeout)

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(find_pg_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
