"""How many request-body bytes the app behind a live server has read, for a proxy that cuts
a request (tests/support/dropping_proxy.py): it cuts once the app holds some of the bytes.

Bytes that reached the server but not the app when the connection drops are thrown away
(uvicorn's receive answers only the disconnect from then on), so an API that is slow to
start reading (a loaded machine: its lease and store calls run in threads) would keep none
of them, and a test expecting the first bytes kept would fail. Waiting on this count makes
the cut come after the read, however slow the machine.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyReads:
    """An ASGI app counting the body bytes the app it is put around (``around``) has read
    of ``method`` requests."""

    def __init__(self, method: str = "PATCH") -> None:
        self.app: ASGIApp | None = None
        self.method = method
        self._read = 0
        self._changed = threading.Condition()

    def around(self, app: ASGIApp) -> BodyReads:
        self.app = app
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "BodyReads is served around an app"
        if scope["type"] != "http" or scope["method"] != self.method:
            await self.app(scope, receive, send)
            return

        async def counted() -> Message:
            message = await receive()
            if message.get("body"):
                with self._changed:
                    self._read += len(message["body"])
                    self._changed.notify_all()
            return message

        await self.app(scope, counted, send)

    def read(self) -> int:
        with self._changed:
            return self._read

    def wait_past(self, count: int, timeout: float) -> bool:
        """Whether the app has read more than ``count`` bytes within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self._read > count, timeout)
