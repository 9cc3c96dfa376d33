"""A local Standard Webhooks receiver that can go down and come back on the same URL.

It records every request it answered and verifies every signature. A receiver may see a
retry of one event (the same ``webhook-id``: a delivery that reached it but whose answer was
lost), so what counts is the distinct deliveries by id, which :meth:`WebhookReceiver.deliveries`
returns. ``answer`` decides each request's status: 2xx accepts, anything else refuses (the
receiver's app is down behind a live socket); :meth:`stop` closes the socket itself, so
Spool sees connection refused.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

from standardwebhooks import Webhook

from devstack.proc import free_port


@dataclass
class Received:
    msg_id: str
    event: dict  # the verified body: {"type", "timestamp", "data"}
    status: int

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def accept_all(_event: dict) -> int:
    return 204


class WebhookReceiver:
    def __init__(self, secret: str, answer: Callable[[dict], int] = accept_all) -> None:
        self.verifier = Webhook(secret)
        self.answer = answer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/spool"
        self.received: list[Received] = []
        self.unverified: list[str] = []  # why each refused signature failed; must stay empty
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver.take(dict(self.headers.items()), body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        return Handler

    def take(self, headers: dict[str, str], body: bytes) -> int:
        """Verify one request, decide its answer and record it."""
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            event = self.verifier.verify(body, lowered)
        except Exception as exc:  # noqa: BLE001 - any verification failure is a finding
            with self._lock:
                self.unverified.append(f"{type(exc).__name__}: {exc}: {body[:200]!r}")
            return 400
        with self._lock:
            status = self.answer(event)
            self.received.append(Received(lowered.get("webhook-id", ""), event, status))
        return status

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> WebhookReceiver:
        """Listen on the receiver's port (again, after a stop)."""
        if self._server is None:
            self._server = http.server.ThreadingHTTPServer(
                ("127.0.0.1", self.port), self._handler()
            )
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close the socket: connections are refused until the next start."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what arrived ---------------------------------------------------------------------

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def attempts(self, event_type: str) -> int:
        """Requests of this event type that reached the receiver, accepted or not."""
        return sum(r.event["type"] == event_type for r in self.snapshot())

    def deliveries(self) -> dict[str, dict]:
        """Distinct accepted deliveries: webhook-id -> the event, in order of first arrival.

        Raises AssertionError if one id ever carried two different events."""
        by_id: dict[str, dict] = {}
        for r in self.snapshot():
            if not r.accepted:
                continue
            first = by_id.setdefault(r.msg_id, r.event)
            if _content(first) != _content(r.event):
                raise AssertionError(
                    f"webhook-id {r.msg_id} carried two different events: {first} and {r.event}"
                )
        return by_id

    def ids_by_type(self) -> dict[str, set[str]]:
        """Event type -> the distinct webhook-ids accepted for it."""
        found: dict[str, set[str]] = {}
        for msg_id, event in self.deliveries().items():
            found.setdefault(event["type"], set()).add(msg_id)
        return found

    def accepted_types_in_order(self) -> list[str]:
        """Event types in the order the receiver first accepted each distinct delivery."""
        return [event["type"] for event in self.deliveries().values()]

    def resends(self) -> int:
        """Accepted requests beyond the first of their id (retries the receiver absorbed)."""
        accepted = [r for r in self.snapshot() if r.accepted]
        return len(accepted) - len({r.msg_id for r in accepted})


def _content(event: dict) -> str:
    """An event without its send timestamp: every retry is signed anew at its own time."""
    return json.dumps({"type": event.get("type"), "data": event.get("data")}, sort_keys=True)
