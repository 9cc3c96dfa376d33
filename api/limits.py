"""Request body caps, enforced while the body streams in.

A pure ASGI middleware: it refuses a declared ``Content-Length`` above the cap before the app
runs, and counts the bytes of every ``http.request`` message the app receives, refusing (413,
the API's one error shape) as soon as a chunked or lying body passes the cap. Nothing is
buffered here: a 20 MB JSON post is stopped after the first cap's worth of bytes instead of
being read and parsed whole. The app reads the body only through ``receive``, so the server
stops reading the socket too.

Every endpoint gets ``settings.api_max_json_bytes``; the video upload gets its own cap
(``max_upload_bytes`` plus the form's overhead) while api/uploads.py still enforces the file
part's own limit as it streams (that one names the field, and usually fires first).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from api.errors import ApiError, error_body
from api.uploads import FILE_FIELD, MAX_FIELD_BYTES, MAX_FIELDS
from spool.config import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Boundaries, part headers and the short form fields around the one file part.
UPLOAD_OVERHEAD_BYTES = 64 * 1024 + MAX_FIELDS * MAX_FIELD_BYTES
UPLOAD_ROUTE = ("POST", "/v1/videos")
RESUMABLE_ROUTES = (("POST", "/v1/uploads"), ("PATCH", "/v1/uploads/*"))
IMPORT_ROUTE = ("POST", "/v1/followers/import")


@dataclass(frozen=True)
class Cap:
    """At most ``bytes`` of body; past it a 413 saying ``message`` (and naming ``field``)."""

    bytes: int
    message: str
    field: str | None = None


def json_cap(settings: Settings) -> Cap:
    limit = settings.api_max_json_bytes
    return Cap(limit, f"request body exceeds the limit of {limit} bytes")


def upload_cap(settings: Settings) -> Cap:
    """The whole multipart request: the file's own cap plus room for the form around it.
    Same words and field as api/uploads.py, which refuses a file over the cap first."""
    return Cap(
        settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES,
        f"upload exceeds the limit of {settings.max_upload_bytes} bytes",
        FILE_FIELD,
    )


class BodyTooLarge(ApiError, HTTPException):
    """Raised from ``receive`` inside the app. An HTTPException, so FastAPI's body reading
    lets it through instead of turning it into a 400; an ApiError, so its handler answers in
    the one error shape with the field."""

    def __init__(self, cap: Cap) -> None:
        headers = {"Connection": "close"}
        ApiError.__init__(self, 413, cap.message, field=cap.field, headers=headers)
        self.status_code = 413
        self.detail = cap.message


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when absent or not a number."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Caps the request body of every HTTP request: ``default`` unless ``routes`` has a cap
    for (method, path)."""

    def __init__(
        self, app: ASGIApp, *, default: Cap, routes: dict[tuple[str, str], Cap] | None = None
    ) -> None:
        self.app = app
        self.default = default
        self.routes = routes or {}

    def cap_for(self, scope: Scope) -> Cap:
        """The route's cap: by its path, or its parent's ``/*`` (one path segment below)."""
        method, path = scope.get("method", ""), scope.get("path", "").rstrip("/") or "/"
        found = self.routes.get((method, path))
        if found is None:
            found = self.routes.get((method, path.rsplit("/", 1)[0] + "/*"))
        return found or self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope)
        declared = declared_length(scope)
        if declared is not None and declared > cap.bytes:
            await refuse(send, cap)  # before a byte of the body is read
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap.bytes:
                    raise BodyTooLarge(cap)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            # Raised where no handler caught it (outside routing); answer unless the app
            # already started a response, which then just ends with the connection.
            if started:
                raise
            await refuse(send, cap)


async def refuse(send: Send, cap: Cap) -> None:
    """A 413 in the API's error shape; the connection is closed, so the rest of the body is
    never read."""
    body = json.dumps(error_body("too_large", cap.message, cap.field)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def resumable_cap(settings: Settings) -> Cap:
    """A tus request's body: never more than a whole upload (its route checks the body
    against the upload's own Upload-Length, and says so)."""
    limit = settings.max_upload_bytes
    return Cap(limit, f"upload exceeds the limit of {limit} bytes")


def import_cap(settings: Settings) -> Cap:
    limit = settings.api_max_import_bytes
    return Cap(
        limit,
        f"import exceeds the limit of {limit} bytes: send the lines in several requests "
        "(follows already stored are skipped)",
    )


def install_body_limits(app: Any, settings: Settings) -> None:
    """Cap every request body of ``app`` (a FastAPI app) from settings."""
    routes = {UPLOAD_ROUTE: upload_cap(settings), IMPORT_ROUTE: import_cap(settings)}
    routes |= {route: resumable_cap(settings) for route in RESUMABLE_ROUTES}
    app.add_middleware(BodyLimitMiddleware, default=json_cap(settings), routes=routes)
