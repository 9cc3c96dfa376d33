"""Read grants: a video's media URLs that work without the API key, for a while.

With SPOOL_PUBLIC_READS=false every read needs ``Authorization: Bearer <key>``, which a
browser cannot send with a ``<video src>``, a ``<track>``, a poster or the playlist and
segment requests of an HLS player. So a video's status, read with the key, gives its media
URLs under a grant::

    /v1/videos/{video_id}/grant/{expires}.{signature}/hls/master.m3u8

``signature`` is an HMAC-SHA256 of the video id and the expiry under a key derived from the
first API key (every API process of a deployment shares the keys, so any of them checks any
grant; replacing that key revokes every grant). The grant sits in the path, not the query
string, so the relative URIs inside playlists and the storyboard track resolve under it and
carry it too. It reads only that video's media files: not its status, not the list, no write.
Expiries are rounded up to the hour, so a video's URLs stay the same for an hour and a
browser's cache keeps working; a grant lasts between ``media_grant_seconds`` and an hour more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from spool.config import Settings

GRANT = "grant"  # the path segment before a grant
_ROUND = 3600
_DERIVE = b"spool media read grant v1"
# /v1/videos/{id}/grant/{expires}.{signature}/{file}: the id as VideoId allows, a 43-character
# unpadded base64url SHA-256, and one of the media files' paths (api/routes/videos.py,
# api/streaming.py). Anything else under /grant/ is left alone, and found by no route.
_GRANTED = re.compile(
    r"/v1/videos/(?P<video>[A-Za-z0-9_-]{1,100})/"
    + GRANT
    + r"/(?P<expires>[0-9]{1,12})\.(?P<signature>[A-Za-z0-9_-]{43})"
    r"/(?P<file>renditions/[^/]+|poster\.jpg|captions\.(?:vtt|srt)|hls/.+|storyboard\.vtt"
    r"|storyboard/[^/]+)"
)


@dataclass(frozen=True)
class Grant:
    video_id: str
    expires: int
    signature: str


def _key(settings: Settings) -> bytes | None:
    keys = settings.api_key_values
    if not keys:
        return None
    return hmac.new(keys[0].encode(), _DERIVE, hashlib.sha256).digest()


def _sign(key: bytes, video_id: str, expires: int) -> str:
    mac = hmac.new(key, f"{video_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def media_base(settings: Settings, video_id: str, now: float) -> str | None:
    """Where a video's media URLs start for someone who read its status: a grant when reads
    are private, None (plain URLs) when they are public or there is no key to sign with."""
    key = _key(settings)
    if settings.public_reads or key is None:
        return None
    expires = (int(now) // _ROUND + 1) * _ROUND + settings.media_grant_seconds
    return f"/v1/videos/{video_id}/{GRANT}/{expires}.{_sign(key, video_id, expires)}"


def grant_problem(settings: Settings, grant: Grant, now: float) -> str | None:
    """Why ``grant`` does not open its video's media now; None if it does. The video is the
    one in the path the grant came in, which the route serves: the signature binds the two."""
    key = _key(settings)
    if key is None or not hmac.compare_digest(
        grant.signature, _sign(key, grant.video_id, grant.expires)
    ):
        return "invalid read grant: ask the video's status again for its media URLs"
    if now >= grant.expires:
        return "read grant expired: ask the video's status again for fresh media URLs"
    return None


def granted(scope: Scope) -> Grant | None:
    """The grant a request's path carried (set by :class:`GrantPaths`), if any."""
    return scope.get("state", {}).get("read_grant")


class GrantPaths:
    """ASGI middleware: a GET or HEAD of a media file under a grant is routed as the same
    file's plain URL, with the grant kept in the request's state for the read check
    (api/deps.py). Only the path is rewritten; whether the grant is good is decided there,
    so a bad one is answered like a refused key. Add it inside the telemetry middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            match = _GRANTED.fullmatch(scope["path"])
            if match is not None:
                # In place: the telemetry around this app then sees the route it reached
                # (its metrics' label) and a path without the grant (its traces).
                path = f"/v1/videos/{match['video']}/{match['file']}"
                scope["path"], scope["raw_path"] = path, quote(path).encode()
                scope.setdefault("state", {})["read_grant"] = Grant(
                    match["video"], int(match["expires"]), match["signature"]
                )
        await self.app(scope, receive, send)
