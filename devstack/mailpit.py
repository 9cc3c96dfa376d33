"""Build, start and stop a real SMTP server (Mailpit) for tests and local runs.

Mailpit (MIT, https://github.com/axllent/mailpit) accepts mail over SMTP (STARTTLS and
auth when given a certificate and a password file) and shows it in a web UI, with an HTTP
API to read what arrived. It is built once from source with ``go install`` into
``.cache/mailpit/`` (the Go module proxy; later runs need no network), like the other
servers the stack fetches into ``.cache/``.

Run one in the foreground: ``python -m devstack.mailpit`` (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack.proc import StackError, require_free_port, start_process, stop_process, wait_until

MAILPIT_VERSION = "v1.33.1"
MODULE = f"github.com/axllent/mailpit@{MAILPIT_VERSION}"
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "mailpit"
DEFAULT_SMTP_PORT = 1025
DEFAULT_HTTP_PORT = 8025


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if found is None:
        raise StackError("Mailpit is built with Go: no `go` on PATH (install Go 1.24+)")
    return found


def ensure_binary() -> Path:
    """The Mailpit binary under .cache/mailpit/, built once with `go install`."""
    cached = CACHE_DIR / f"mailpit-{MAILPIT_VERSION}"
    if cached.exists():
        return cached
    staging = CACHE_DIR / f".build-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    # Go's module and build caches stay the user's, shared by every checkout on the machine.
    env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0"}
    try:
        built = subprocess.run(
            [_go(), "install", MODULE], env=env, capture_output=True, text=True, timeout=1800
        )
        if built.returncode != 0:
            raise StackError(f"go install {MODULE} failed:\n{built.stderr[-2000:]}")
        # Renamed into place, so a parallel run never starts a half-written binary.
        os.replace(staging / "mailpit", cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached


def password_file(path: Path, username: str, password: str) -> Path:
    """An htpasswd file (SHA1 form, which Mailpit reads) allowing one SMTP login."""
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()  # noqa: S324
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{username}:{{SHA}}{digest}\n")
    return path


class MailpitServer:
    """One Mailpit: SMTP on 127.0.0.1:smtp_port, web UI and API on 127.0.0.1:http_port, its
    messages in data_dir (kept across stop() and start()). With ``tls`` (cert, key) it offers
    STARTTLS and requires it; with ``auth`` (a password file) it requires a login."""

    def __init__(
        self,
        data_dir: Path,
        smtp_port: int,
        http_port: int,
        log_path: Path,
        *,
        tls: tuple[Path, Path] | None = None,
        auth: Path | None = None,
        allowed_recipients: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.smtp_port, self.http_port = smtp_port, http_port
        self.log_path = Path(log_path)
        self.tls, self.auth, self.allowed_recipients = tls, auth, allowed_recipients
        self.proc: subprocess.Popen | None = None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def argv(self, binary: Path) -> list[str]:
        argv = [
            str(binary),
            "--smtp",
            f"127.0.0.1:{self.smtp_port}",
            "--listen",
            f"127.0.0.1:{self.http_port}",
            "--database",
            str(self.data_dir / "mailpit.db"),
            "--quiet",
        ]
        if self.tls is not None:
            argv += ["--smtp-tls-cert", str(self.tls[0]), "--smtp-tls-key", str(self.tls[1])]
            argv += ["--smtp-require-starttls"]
        if self.auth is not None:
            argv += ["--smtp-auth-file", str(self.auth)]
        else:
            argv += ["--smtp-auth-accept-any", "--smtp-auth-allow-insecure"]
        if self.allowed_recipients:
            argv += ["--smtp-allowed-recipients", self.allowed_recipients]
        return argv

    def start(self, timeout: float = 60) -> MailpitServer:
        require_free_port(self.smtp_port, "Mailpit SMTP")
        require_free_port(self.http_port, "Mailpit web UI")
        binary = ensure_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = start_process(self.argv(binary), self.log_path, cwd=self.data_dir)
        try:
            wait_until(self.healthy, timeout, self.proc, "Mailpit", self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.ui_url + "/readyz", timeout=3):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)
        self.proc = None

    def api(self, path: str, method: str = "GET") -> Any:
        """An answer of Mailpit's HTTP API (``/api/v1/...``), decoded."""
        request = urllib.request.Request(self.ui_url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def messages(self) -> list[dict]:
        """Every message's summary, oldest first."""
        found: list[dict] = []
        while True:
            page = self.api(f"/api/v1/messages?start={len(found)}&limit=500")
            found += page["messages"]
            if not page["messages"] or len(found) >= page["total"]:
                return found[::-1]

    def __enter__(self) -> MailpitServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Mailpit in the foreground.")
    parser.add_argument("--smtp-port", type=int, default=DEFAULT_SMTP_PORT)
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "var" / "mailpit")
    args = parser.parse_args()
    server = MailpitServer(
        args.data_dir, args.smtp_port, args.http_port, args.data_dir / "mailpit.log"
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with server:
        print(f"Mailpit: SMTP 127.0.0.1:{args.smtp_port}, web UI {server.ui_url}", flush=True)
        try:
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
