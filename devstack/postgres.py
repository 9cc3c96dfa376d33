"""A throwaway PostgreSQL server from Debian's `postgresql` package, for tests and benchmarks."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
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
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "spool", "-A", "trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, user=user)
        self.proc = start_process(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-k", str(self.home), "-c", "fsync=off"],
            self.log_path, user=user)
        wait_until(self._ready, timeout, self.proc, "PostgreSQL", self.log_path)
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "spool", "spool"], check=True, capture_output=True, user=user)
        return self

    def _ready(self) -> bool:
        result = subprocess.run([str(find_pg_bin() / "pg_isready"), "-h", "127.0.0.1", "-p",
                                 str(self.port)], capture_output=True)
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
