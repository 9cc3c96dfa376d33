"""What is refused before any route runs, in the API's one error shape (docs/security.md).

- ``ServedHosts``: a request whose ``Host`` names a host this API does not serve is answered
  400. A web page on a domain that rebinds to 127.0.0.1 reaches a local API as its own origin,
  but its requests still carry its domain in ``Host``: only localhost, address literals (which
  no DNS answer can stand for) and the names in ``SPOOL_API_ALLOWED_HOSTS`` are served.
- ``KeyBeforeBody``: a request to a route that needs the API key is answered 401 before a byte
  of its body is read. FastAPI reads and parses a route's body before it runs the route's
  dependencies, so the key check of ``api/deps.py`` alone let anyone make the API read and
  parse a megabyte of JSON for nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from api.deps import UNAUTHORIZED_HEADERS, key_problem, require_key
from api.errors import error_response
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


def host_name(host: str) -> str:
    """The name or address of a ``Host`` header, without port or IPv6 brackets, lowercase."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_is_served(name: str, allowed: list[str]) -> bool:
    """localhost, an address literal, or a name ``allowed`` lists (``*.example.com`` for its
    subdomains, ``*`` for any)."""
    if name == "localhost" or is_address(name):
        return True
    for entry in (a.strip().lower() for a in allowed):
        if entry == "*" or entry == name:
            return True
        if entry.startswith("*.") and name.endswith(entry[1:]):
            return True
    return False


class ServedHosts:
    """400 for a request whose Host header names a host this API does not serve. A request
    without one (HTTP/1.0, a raw ASGI call) never comes from a browser: it passes."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.allowed = [*settings.api_allowed_hosts, settings.api_host]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = header(scope, b"host") if scope["type"] in ("http", "websocket") else None
        if host is not None and not host_is_served(host_name(host), self.allowed):
            answer = error_response(
                400,
                f"this API does not serve the host {host_name(host)[:100]!r} "
                "(SPOOL_API_ALLOWED_HOSTS lists the names it answers to)",
                field="Host",
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


def same_origin(scope: Scope) -> bool:
    """Whether a request comes from the page it was served to (or from no browser at all): an
    ``Origin`` header, when sent, equal to this request's own origin, and ``Sec-Fetch-Site``,
    when sent, ``same-origin`` or ``none`` (typed in the address bar)."""
    origin = header(scope, b"origin")
    own = f"{scope.get('scheme', 'http')}://{(header(scope, b'host') or '').strip().lower()}"
    if origin is not None and origin.strip().lower() != own:
        return False
    site = header(scope, b"sec-fetch-site")
    return site is None or site.strip().lower() in ("same-origin", "none")
