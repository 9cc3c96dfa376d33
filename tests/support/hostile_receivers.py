"""Webhook receivers that misbehave on purpose: the hostile-input corpus's receivers.

A receiver chooses the pace and size of its answer, so a delivery must bound both: each case
here answers one way a receiver can hold a worker (an endless body, a byte dripped at a time
into the headers or the body, silence, an answer held until the test lets it go), and says
what the delivery must do and within which bounds of time and memory.
``tests/support/deliver_once.py`` delivers to one in a process of its own, which reports its
own peak memory; ``tests/test_webhook_bounds.py`` runs every case.

Nothing waits on a clock to decide an outcome: a dripping receiver keeps dripping until the
delivery has given up (or the test stops it), so a delivery without a deadline never ends
instead of ending late.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

# What an unbounded reader would take in from the endless body before the receiver stops
# (the review saw 512 MiB); a bounded one closes the connection after a few KiB.
ENDLESS_CAP_BYTES = 256 * 1024 * 1024
CHUNK = 64 * 1024
# The drip's pace: far below any per-read timeout, so only a total deadline ends it.
DRIP_SECONDS = 0.25


class RawReceiver:
    """A TCP listener on 127.0.0.1 that reads each request whole, then hands the connection
    to ``answer(receiver, conn)`` on a thread of its own."""

    def __init__(self, answer: Callable[[RawReceiver, socket.socket], None]) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/T000/B000/s3cr3t-token"
        self.stop = threading.Event()  # set when the test closes the receiver
        self.got_request = threading.Event()
        self.closed_by_client = threading.Event()
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def sent(self, count: int) -> None:
        with self._lock:
            self.bytes_sent += count

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            read_request(conn)
            self.got_request.set()
            try:
                self.answer(self, conn)
            except OSError:  # the client closed the connection: what a bounded reader does
                self.closed_by_client.set()

    def __enter__(self) -> RawReceiver:
        thread = threading.Thread(target=self._serve, daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()
        for thread in self._threads:
            thread.join(10)


def read_request(conn: socket.socket) -> bytes:
    """One HTTP request with a Content-Length body, whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return data
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


# --- answers --------------------------------------------------------------------------------


def endless_body(rx: RawReceiver, conn: socket.socket) -> None:
    """200, then a chunked body that does not end (up to ENDLESS_CAP_BYTES)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = f"{CHUNK:x}\r\n".encode() + b"\0" * CHUNK + b"\r\n"
    while rx.bytes_sent < ENDLESS_CAP_BYTES and not rx.stop.is_set():
        conn.sendall(chunk)
        rx.sent(CHUNK)
    conn.sendall(b"0\r\n\r\n")


def _drip(rx: RawReceiver, conn: socket.socket, head: bytes) -> None:
    conn.sendall(head)
    while not rx.stop.wait(DRIP_SECONDS):
        conn.sendall(b"a")
        rx.sent(1)


def drip_headers(rx: RawReceiver, conn: socket.socket) -> None:
    """A status line, then one byte of a header every DRIP_SECONDS: the headers never end."""
    _drip(rx, conn, b"HTTP/1.1 200 OK\r\nX-Drip: ")


def drip_body(rx: RawReceiver, conn: socket.socket) -> None:
    """200 and a body announced as 1 MB, one byte every DRIP_SECONDS."""
    _drip(rx, conn, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")


def silent(rx: RawReceiver, conn: socket.socket) -> None:
    """Takes the request and never answers."""
    rx.stop.wait()


def held_until(release: threading.Event) -> Callable[[RawReceiver, socket.socket], None]:
    """Answers 204 once ``release`` is set (or the receiver closes)."""

    def answer(rx: RawReceiver, conn: socket.socket) -> None:
        while not (release.wait(0.05) or rx.stop.is_set()):
            pass
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    return answer


# --- the corpus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiverCase:
    name: str
    what: str
    answer: Callable[[RawReceiver, socket.socket], None]
    outcome: str  # "delivered" or "failed"
    # Bounds on the delivering process: growth of its peak memory, and (for the held cases)
    # that it gives up by the deadline rather than by a per-read timeout.
    max_memory_growth_bytes: int = 32 * 1024 * 1024
    max_bytes_sent: int = 32 * 1024 * 1024  # by the receiver before the client closed


RECEIVER_CASES = [
    ReceiverCase(
        "endless_body",
        "200 and a chunked body that never ends",
        endless_body,
        outcome="delivered",
    ),
    ReceiverCase(
        "drip_headers",
        "a status line, then a header byte every 0.25 s",
        drip_headers,
        outcome="failed",
    ),
    ReceiverCase("drip_body", "200, then a body byte every 0.25 s", drip_body, outcome="delivered"),
    ReceiverCase("silent", "reads the request, never answers", silent, outcome="failed"),
]
