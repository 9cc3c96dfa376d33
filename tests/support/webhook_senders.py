"""A plain local webhook receiver for tests that count what one destination was sent, and
the settings that point Spool's webhook notifier at it with the tests' signing secret."""

from __future__ import annotations

import http.server
import socket
import threading
from contextlib import contextmanager

from standardwebhooks import Webhook

from spool.config import Settings
from tests.support.api import api_settings

SECRET = "whsec_" + "c3Bvb2wtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="


class Receiver:
    """An http.server on 127.0.0.1 that answers 500 to the first ``fail`` requests."""

    def __init__(self, fail: int = 0, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.paths: list[str] = []  # the request target of each request, query included
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = 500 if len(receiver.requests) < receiver.fail else 204
                receiver.requests.append(
                    ({k.lower(): v for k, v in self.headers.items()}, body, status)
                )
                receiver.paths.append(self.path)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        server_class = http.server.ThreadingHTTPServer
        if ":" in host:  # an IPv6 address
            server_class = type("IPv6Server", (server_class,), {"address_family": socket.AF_INET6})
        self.server = server_class((host, port), Handler)
        self.port = self.server.server_address[1]
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"http://{netloc}:{self.port}/hooks/spool"

    def accepted(self) -> list[dict]:
        """Every request's verified event (raises if any signature is wrong)."""
        verifier = Webhook(SECRET)
        return [verifier.verify(body, headers) for headers, body, _ in self.requests]

    @contextmanager
    def running(self):
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def webhook_settings(settings: Settings, **extra) -> Settings:
    values = {
        "notifier": "webhook",
        "webhook_secret": SECRET,
        "webhook_allowlist": ["127.0.0.1/32"],
        **extra,
    }
    return api_settings(settings, **values)
