"""An HTTP reverse proxy that answers 503 to the first N matching requests, then forwards.

Stands between Spool and a real Elasticsearch so a test can make exactly N index attempts
fail the way an overloaded or restarting cluster does, and then let the real one answer.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
}


class FaultProxy:
    def __init__(
        self, upstream: str, *, fail_first: int, matches: Callable[[str, str], bool]
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.remaining_failures = fail_first
        self.matches = matches
        self.failed = 0
        self.forwarded_matching = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _should_fail(self, method: str, path: str) -> bool:
        if not self.matches(method, path):
            return False
        with self._lock:
            if self.remaining_failures > 0:
                self.remaining_failures -= 1
                self.failed += 1
                return True
            self.forwarded_matching += 1
            return False

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy._should_fail(self.command, self.path):
                    payload = b'{"error":"injected by FaultProxy: service unavailable"}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=30
                )
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "host"
                    }
                    conn.request(self.command, self.path, body=body, headers=headers)
                    upstream = conn.getresponse()
                    data = upstream.read()
                finally:
                    conn.close()
                self.send_response(upstream.status)
                for key, value in upstream.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler


def is_document_write(method: str, path: str) -> bool:
    return method in ("PUT", "POST") and ("/_doc/" in path or "/_create/" in path)
