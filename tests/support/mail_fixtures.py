"""Pytest plugin: one real SMTP server (Mailpit, built with `go install`) per test session,
started on first use, with STARTTLS (a throwaway CA), a required login, and recipients under
one domain only (any other is refused with a 5xx, as a server refuses an unknown mailbox)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from devstack.proc import free_port
from spool.config import Settings
from tests.support.paths import LOGS

LOG_PATH = LOGS / "mailpit.log"
# Mailpit accepts these recipients and refuses every other with a 5xx.
ACCEPTED_DOMAIN = "example.com"


@dataclass
class Mail:
    server: object  # devstack.mailpit.MailpitServer
    ca: Path
    username: str
    password: str

    def settings(self, base: Settings, **overrides) -> Settings:
        """``base`` with email on, sent through this server with STARTTLS and a login."""
        return base.model_copy(
            update={
                "notifier": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": self.server.smtp_port,
                "smtp_starttls": True,
                "smtp_tls_ca": self.ca,
                "smtp_username": self.username,
                "smtp_password": SecretStr(self.password),
                "email_from": "Spool <spool@example.org>",
                "email_secret": SecretStr("test-email-secret"),
                "public_url": "https://spool.example.org",
                **overrides,
            }
        )

    def clear(self) -> None:
        self.server.api("/api/v1/messages", method="DELETE")


@pytest.fixture(scope="session")
def mailpit(tmp_path_factory) -> Mail:
    from devstack.mailpit import MailpitServer, password_file
    from tests.support.pki import issue_cert, make_ca
    from tests.support.services import started

    root = tmp_path_factory.mktemp("mailpit")
    ca_pair, ca_cert, ca_key = make_ca(root, "mail-ca")
    server_pair = issue_cert(root, "mail-server", ca_cert, ca_key, server=True)
    username, password = "spool", secrets.token_urlsafe(12)
    server = MailpitServer(
        root / "data",
        free_port(),
        free_port(),
        LOG_PATH,
        tls=(server_pair.cert, server_pair.key),
        auth=password_file(root / "smtp-users", username, password),
        allowed_recipients=rf"@{ACCEPTED_DOMAIN.replace('.', '[.]')}$",
    )
    with started(server, "Mailpit"):  # the first run builds Mailpit (go install), then starts it
        yield Mail(server, ca_pair.cert, username, password)
