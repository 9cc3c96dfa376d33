"""Security headers: on every response, and the web page's Content-Security-Policy.

Every answer says ``X-Content-Type-Options: nosniff`` (captions and titles are people's words:
a browser must never take a file for another type than the one it is served as) and
``Referrer-Policy: no-referrer``. The page (``/``) also gets a policy that lets it run only
its own script, styles, workers and media: this origin, plus ``blob:`` (hls.js feeds the
player through Media Source Extensions, from a worker it makes) and, when media is redirected
to presigned URLs (SPOOL_MEDIA_REDIRECT), the store's origin.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spool.config import Settings
from spool.storage import open_storage

PAGE = "/"
EVERY_RESPONSE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def page_policy(media_origin: str | None) -> str:
    """The page's Content-Security-Policy; ``media_origin`` is where presigned media URLs
    point, if they are used."""
    store = f" {media_origin}" if media_origin else ""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{store}",
            f"media-src 'self' blob:{store}",
            f"connect-src 'self'{store}",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def media_origin(settings: Settings) -> str | None:
    """The origin presigned media URLs point at, when the API redirects to them: signed
    here, offline, as the media routes sign them."""
    if not settings.media_redirect:
        return None
    url = open_storage(settings).presigned_url("videos/origin/poster.jpg", 60)
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SecurityHeaders:
    """ASGI middleware adding the headers above; ``policy`` is the page's CSP."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope["path"] == PAGE

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in EVERY_RESPONSE.items():
                    headers.setdefault(name, value)
                if page:
                    headers["Content-Security-Policy"] = self.policy
            await send(message)

        await self.app(scope, receive, send_with_headers)
