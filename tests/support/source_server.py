"""A real HTTP server on loopback serving one body with byte ranges, and ways to misbehave:
drop the connection mid-body, answer 404, declare more bytes than it has, or drip its bytes.
Tests reach it through the guard by allowing 127.0.0.1 the way webhook tests do
(``webhook_allowlist``)."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK_ALLOWED = {"webhook_allowlist": ["127.0.0.1/32"]}
_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclass
class Behaviour:
    status: int = 200
    drop_first_after: int | None = None  # the first answer ends its connection after this many
    declared_length: int | None = None  # Content-Length stated instead of the real one
    no_length: bool = False  # no Content-Length: the body ends when the connection closes
    drip: bool = False  # one byte at a time until the test is over
    redirect_to: str | None = None


@dataclass
class Seen:
    ranges: list[str | None] = field(default_factory=list)
    drops: int = 0


class SourceServer:
    """``with SourceServer(body, Behaviour(...)) as srv``: ``srv.url`` serves ``body``."""

    def __init__(self, body: bytes, behaviour: Behaviour | None = None) -> None:
        self.body = body
        self.behaviour = behaviour or Behaviour()
        self.seen = Seen()
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/media/clip.mp4?token=s3cr3t"

    def __enter__(self) -> SourceServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        wanted = h.headers.get("Range")
        self.seen.ranges.append(wanted)
        if b.redirect_to and not wanted:
            h.send_response(302)
            h.send_header("Location", b.redirect_to)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if b.status != 200:
            h.send_response(b.status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start = int(m[1]) if wanted and (m := _RANGE.fullmatch(wanted)) else 0
        part = self.body[start:]
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}")
        if not b.no_length:
            h.send_header("Content-Length", str(b.declared_length or len(part)))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", '"clip-1"')
        h.send_header("Content-Type", "video/mp4")
        h.end_headers()
        self._send_body(h, part)

    def _send_body(self, h: BaseHTTPRequestHandler, part: bytes) -> None:
        b = self.behaviour
        if b.drip:
            for i in range(len(part)):
                if self.stop.wait(0.1):
                    return
                h.wfile.write(part[i : i + 1])
                h.wfile.flush()
            return
        if b.drop_first_after is not None and self.seen.drops == 0:
            self.seen.drops += 1
            h.wfile.write(part[: b.drop_first_after])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(part)
