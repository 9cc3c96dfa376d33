"""What is refused before any route runs, in the API's one error shape (docs/security.md).

- ``KeyBeforeBody``: a request to a route that needs the API key is answered 401 before a byte
  of its body is read. FastAPI reads and parses a route's body before it runs the route's
  dependencies, so the key check of ``api/deps.py`` alone let anyone make the API read and
  parse a megabyte of JSON for nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from api.deps import UNAUTHORIZED_HEADERS, key_problem, require_key
from spool.config import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, if repeated), or None."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def _needs_key(dependant: Dependant) -> bool:
    return any(d.call is require_key or _needs_key(d) for d in dependant.dependencies)


def key_refused(problem: str) -> HTTPException:
    """Raised from ``receive`` inside the app: FastAPI's body reading lets an HTTPException
    through, and its handler (api/errors.py) answers 401 in the one error shape."""
    return HTTPException(401, problem, headers=dict(UNAUTHORIZED_HEADERS))


class KeyBeforeBody:
    """The first read of a request's body checks the key when the route it was routed to
    needs one (``require_key`` among its dependencies), and refuses (401) instead of
    reading: FastAPI reads and parses a body before the route's own dependencies run."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._needs: dict[int, bool] = {}  # id(route) -> whether it needs the key

    def route_needs_key(self, scope: Scope) -> bool:
        route = scope.get("route")  # set by the router before the route runs
        if not isinstance(route, APIRoute):
            return False
        if id(route) not in self._needs:
            self._needs[id(route)] = _needs_key(route.dependant)
        return self._needs[id(route)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        checked = False

        async def receive_after_key() -> Message:
            nonlocal checked
            if not checked:
                checked = True
                if self.route_needs_key(scope):
                    problem = key_problem(self.settings, header(scope, b"authorization") or "")
                    if problem is not None:
                        raise key_refused(problem)
            return await receive()

        await self.app(scope, receive_after_key, send)
