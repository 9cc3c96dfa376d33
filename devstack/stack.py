"""The embedded stack: Temporal dev server (+ Web UI), a worker and the HTTP API, on one machine.

Used by `make up` (foreground until Ctrl-C) and `make demo`. Everything it runs is the real
thing: the `temporal` CLI's dev server persists to SQLite in the data directory, so jobs
survive a restart.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.mailpit import DEFAULT_HTTP_PORT, DEFAULT_SMTP_PORT, MailpitServer
from devstack.proc import (
    StackError,
    require_free_port,
    start_process,
    stop_process,
    wait_for_port,
    wait_until,
)
from devstack.temporal import DevServer
from spool import webhooks
from spool.config import Settings
from spool.migrate import MigrateError, migrate

REPO = Path(__file__).resolve().parent.parent
API_KEY_FILE = "api-key"  # in the data directory, beside webhook-secret


def _kept_secret(settings: Settings, name: str, make: Callable[[], str]) -> str:
    """A secret of the embedded stack, made once per data directory and kept in it (0600)."""
    path = settings.data_dir.resolve() / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(0o600)
        path.write_text(make())
    return path.read_text().strip()


def local_webhook_secret(settings: Settings) -> str:
    """The embedded stack's webhook signing secret, kept in the data dir across restarts."""
    return _kept_secret(settings, "webhook-secret", webhooks.new_secret)


def local_api_key(settings: Settings) -> str:
    """The embedded stack's write key, kept in the data dir (``api-key``): random per data
    directory, so no web page can know it, and the page on this machine fetches it."""
    return _kept_secret(settings, API_KEY_FILE, new_api_key)


def new_api_key() -> str:
    return "spool-local-" + secrets.token_urlsafe(24)


def stack_api_key(settings: Settings) -> str:
    """The write key the stack's API takes: the caller's own SPOOL_API_KEYS if set (they win
    over the stack's defaults), else the data directory's local key."""
    if os.environ.get("SPOOL_API_KEYS") and settings.api_key_values:
        return settings.api_key_values[0]
    return local_api_key(settings)


def local_email_secret(settings: Settings) -> str:
    """The key that signs the embedded stack's unsubscribe links, kept in the data dir."""
    return _kept_secret(settings, "email-secret", lambda: secrets.token_urlsafe(32))


def mail_env(settings: Settings, mail: MailpitServer) -> dict[str, str]:
    """Email on, to the stack's Mailpit (plain SMTP on this machine)."""
    return {
        "SPOOL_NOTIFIER": "webhook,email",
        "SPOOL_SMTP_HOST": "127.0.0.1",
        "SPOOL_SMTP_PORT": str(mail.smtp_port),
        "SPOOL_SMTP_STARTTLS": "false",
        "SPOOL_EMAIL_SECRET": local_email_secret(settings),
        "SPOOL_PUBLIC_URL": f"http://{settings.api_host}:{settings.api_port}",
    }


def stack_env(
    settings: Settings, temporal_address: str, mail: MailpitServer | None = None
) -> dict[str, str]:
    """Environment for the stack's Python processes: same settings, pointed at our server.

    What the caller's environment sets wins; these are the local defaults: a local API key
    the page may fetch from localhost, signed webhooks, and callbacks to receivers on this
    machine allowed (the embedded stack is a developer's machine).
    """
    defaults = {
        "SPOOL_API_KEYS": json.dumps([local_api_key(settings)]),
        "SPOOL_API_EXPOSE_KEY_TO_LOCALHOST": "true",
        "SPOOL_NOTIFIER": "webhook",
        "SPOOL_WEBHOOK_SECRET": settings.webhook_secret_value or local_webhook_secret(settings),
        "SPOOL_WEBHOOK_ALLOW_PRIVATE": "true",
        # The worker's /metrics on a free port, written to its log (docs/observability.md).
        "SPOOL_METRICS_PORT": "0",
        **(mail_env(settings, mail) if mail is not None else {}),
    }
    env = {k: v for k, v in defaults.items() if not os.environ.get(k)}
    env.update(
        {
            "SPOOL_TEMPORAL_ADDRESS": temporal_address,
            "SPOOL_DATA_DIR": str(settings.data_dir.resolve()),
            # The stack waits on these: the API must bind what the caller's settings say, not
            # only what the environment happens to hold.
            "SPOOL_API_HOST": settings.api_host,
            "SPOOL_API_PORT": str(settings.api_port),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class EmbeddedStack:
    settings: Settings
    temporal_port: int = 7233
    ui_port: int = 8233
    with_api: bool = True
    # What the worker runs, after the interpreter (default: worker.py); tests run a wrapper,
    # e.g. ["-m", "tests.support.paced_worker"], to hold its ffmpeg at the input's native pace.
    worker_args: list[str] | None = None
    # Mailpit (`make up`): the emails of the demo, in its web UI.
    with_mail: bool = False
    mail_smtp_port: int = DEFAULT_SMTP_PORT
    mail_http_port: int = DEFAULT_HTTP_PORT
    mail: MailpitServer | None = None
    server: DevServer | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.settings.data_dir.resolve() / "logs"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    def job_url(self, job_id: str) -> str:
        return f"{self.ui_url}/namespaces/{self.settings.temporal_namespace}/workflows/{job_id}"

    def api_available(self) -> bool:
        return self.with_api and (REPO / "api" / "__main__.py").exists()

    def start(self) -> EmbeddedStack:
        # Check every port first, so a taken one fails fast with one clear line.
        require_free_port(self.temporal_port, "the Temporal dev server")
        require_free_port(self.ui_port, "the Temporal Web UI")
        if self.api_available():
            require_free_port(self.settings.api_port, "the Spool API")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.migrate_database()
        try:
            if self.with_mail:
                self.mail = MailpitServer(
                    self.settings.data_dir.resolve() / "mailpit",
                    self.mail_smtp_port,
                    self.mail_http_port,
                    self.logs / "mailpit.log",
                ).start()
            self.server = DevServer(
                port=self.temporal_port,
                ui_port=self.ui_port,
                db_filename=self.settings.data_dir.resolve() / "temporal.db",
                log_path=self.logs / "temporal.log",
            ).start()
            env = stack_env(self.settings, self.temporal_address, self.mail)
            self._start_python(
                "worker",
                self.worker_args or [str(REPO / "worker.py")],
                env,
                ready_text="worker ready",
            )
            if self.api_available():
                self._start_python("api", ["-m", "api"], env)
                wait_for_port(
                    self.settings.api_port,
                    60,
                    self.procs["api"],
                    "Spool API",
                    self.logs / "api.log",
                )
        except BaseException:
            self.stop()
            raise
        return self

    def migrate_database(self) -> None:
        """Bring the schema to head once, here, rather than in the worker and API racing."""
        try:
            print(migrate(self.settings), flush=True)
        except MigrateError as exc:
            raise StackError(str(exc)) from exc

    def _start_python(
        self, name: str, args: list[str], env: dict[str, str], ready_text: str | None = None
    ) -> None:
        log = self.logs / f"{name}.log"
        log.unlink(missing_ok=True)
        proc = start_process([sys.executable, *args], log, env=env, cwd=REPO)
        self.procs[name] = proc
        if ready_text:
            wait_until(
                lambda: log.exists() and ready_text in log.read_text(errors="replace"),
                120,
                proc,
                name,
                log,
            )

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            stop_process(self.procs.pop(name), timeout=40)
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.mail is not None:
            self.mail.stop()
            self.mail = None

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
