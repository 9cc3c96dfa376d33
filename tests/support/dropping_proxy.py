"""A TCP proxy that cuts connections mid-request, as a train's tunnel does.

The first request with ``method`` is cut once the client has sent ``drop_after`` bytes of
it: both sockets are closed without another byte. With ``stall_first`` that request is
stalled there instead (the client's further bytes are read and thrown away, so it waits for
an answer that never comes, until it gives up itself), and the next such request is the one
dropped. Every other request is forwarded untouched.

Given ``app_reads`` (tests/support/body_reads.py, wrapping the API behind ``upstream_port``),
the cut waits until the API has read some of the forwarded body: bytes still in the server's
buffer when the connection drops are thrown away, and a test expecting the first bytes kept
must not depend on how fast the API starts reading.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.body_reads import BodyReads


class DroppingProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        drop_after: int,
        method: bytes = b"PATCH",
        stall_first: bool = False,
        app_reads: BodyReads | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.drop_after = drop_after
        self.method = method
        self.cuts = ["stall", "drop"] if stall_first else ["drop"]
        self.dropped = threading.Event()
        self.stalled = threading.Event()
        self.app_reads = app_reads
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> DroppingProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._spawn(self._client_to_upstream, client, upstream)
            self._spawn(self._pipe, upstream, client)

    def _take_a_cut(self, first: bytes) -> str:
        with self._lock:
            if self.cuts and first.startswith(self.method):
                return self.cuts.pop(0)
        return ""

    def _client_to_upstream(self, client: socket.socket, upstream: socket.socket) -> None:
        sent, cut, read_before = 0, "", 0
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if not cut:  # a request may begin on any read of a kept-alive connection
                cut, sent, read_before = self._take_a_cut(data), 0, self._app_read()
            if cut and sent + len(data) >= self.drop_after:
                with contextlib.suppress(OSError):
                    upstream.sendall(data[: self.drop_after - sent])
                self._wait_app_read_past(read_before)
                # Said before the close, which is what the client sees first.
                (self.dropped if cut == "drop" else self.stalled).set()
                if cut == "stall":
                    self._drain(client)
                self._close(client, upstream)
                return
            sent += len(data)
            try:
                upstream.sendall(data)
            except OSError:
                break
        self._close(client, upstream)

    def _app_read(self) -> int:
        return self.app_reads.read() if self.app_reads else 0

    def _wait_app_read_past(self, count: int) -> None:
        """Until the API has read some of the cut request's body (a bound: past it, the cut
        goes ahead and the test's own check of the kept bytes fails)."""
        if self.app_reads:
            self.app_reads.wait_past(count, 120)

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
            except OSError:
                break
        self._close(source, target)

    @staticmethod
    def _drain(client: socket.socket) -> None:
        """Read and throw away until the client gives up on its request."""
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
