"""Adaptive streaming endpoints: HLS playlists and segments, storyboard sprites and track.

Everything here is read from object storage under keys made by ``spool.storage.keys``; a URL
names a file only through the strict patterns below, never as a free path. Playlists and the
storyboard track are always answered by the API, never redirected: the URIs inside them are
relative, so a player resolves them against this API (with SPOOL_MEDIA_REDIRECT, segments and
sprites then go to presigned URLs of the store).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from api.deps import READ, Services, services
from api.errors import ApiError, error_responses
from api.media import file_response
from spool.storage import keys

router = APIRouter(prefix="/v1", tags=["videos"])

VideoId = PathParam(..., pattern=r"^[A-Za-z0-9_-]{1,100}$", max_length=100)

PLAYLIST = "application/vnd.apple.mpegurl"
MP4 = "video/mp4"
SEGMENT = "video/iso.segment"
VTT = "text/vtt; charset=utf-8"
JPEG = "image/jpeg"
# A variant's folder is its rendition name ("720p"), the audio's "audio".
# The live playlists of a job still running are the same names under "live/", a chunk's
# init and segments named after it ("c00003-init.mp4", "c00003-seg-00001.m4s").
_FOLDER = r"(?:live/)?(?:\d{2,4}p|audio)"
_CHUNK = r"(?:c\d{5}-)?"
HLS_FILES = (
    (re.compile(r"(?:live/)?master\.m3u8"), PLAYLIST),
    (re.compile(rf"{_FOLDER}/index\.m3u8"), PLAYLIST),
    (re.compile(rf"{_FOLDER}/{_CHUNK}init\.mp4"), MP4),
    (re.compile(rf"{_FOLDER}/{_CHUNK}seg-\d{{5,6}}\.m4s"), SEGMENT),
)
SPRITE = re.compile(r"(\d{1,6})\.jpg")
HLS_NAMES = (
    "master.m3u8, <rendition>/index.m3u8, <rendition>/init.mp4 or "
    "<rendition>/seg-NNNNN.m4s (rendition like 720p, or audio), the same under live/"
)


def hls_media_type(path: str) -> str | None:
    """The Content-Type of an HLS file name the API serves; None for any other name."""
    return next((kind for pattern, kind in HLS_FILES if pattern.fullmatch(path)), None)


def _responses(media_type: str) -> dict:
    body = {"content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}
    return {
        200: {"description": "the whole file", **body},
        206: {"description": "the requested byte range", **body},
        **error_responses(
            401, 404, 416, 422, e404="no such file: not a name served here, or not made (yet)"
        ),
    }


async def _serve(
    request: Request,
    svc: Services,
    video_id: str,
    key: str,
    media_type: str,
    *,
    may_redirect: bool,
) -> Response:
    if await svc.videos.deleted(video_id):
        raise ApiError(404, f"no video {video_id!r}: it was deleted")
    s = svc.settings
    return await file_response(
        request,
        svc.storage,
        key,
        media_type,
        redirect_seconds=s.presigned_url_seconds if may_redirect and s.media_redirect else None,
    )


@router.get(
    "/videos/{video_id}/hls/{path:path}",
    dependencies=READ,
    response_class=Response,
    responses=_responses(PLAYLIST),
)
async def hls_file(
    request: Request,
    video_id: str = VideoId,
    path: str = PathParam(...),
    svc: Services = Depends(services),
) -> Response:
    """The HLS master playlist, a variant's or the audio's media playlist, init segment or
    media segment, with Range support."""
    media_type = hls_media_type(path)
    if media_type is None:
        raise ApiError(404, f"no HLS file {path[:100]!r}: the names are {HLS_NAMES}")
    return await _serve(
        request,
        svc,
        video_id,
        keys.hls_key(video_id, path),
        media_type,
        may_redirect=media_type != PLAYLIST,
    )


@router.get(
    "/videos/{video_id}/storyboard.vtt",
    dependencies=READ,
    response_class=Response,
    responses=_responses(VTT),
)
async def storyboard_track(
    request: Request, video_id: str = VideoId, svc: Services = Depends(services)
) -> Response:
    """The storyboard as a WebVTT thumbnails track: one cue per interval, its text a sprite
    URL relative to this one with ``#xywh=x,y,w,h``."""
    return await _serve(
        request, svc, video_id, keys.storyboard_vtt_key(video_id), VTT, may_redirect=False
    )


@router.get(
    "/videos/{video_id}/storyboard/{sprite}",
    dependencies=READ,
    response_class=Response,
    responses=_responses(JPEG),
)
async def storyboard_sprite(
    request: Request,
    video_id: str = VideoId,
    sprite: str = PathParam(..., max_length=20),
    svc: Services = Depends(services),
) -> Response:
    """One storyboard sprite sheet (a JPEG grid of thumbnails), ``0.jpg``, ``1.jpg``, …"""
    match = SPRITE.fullmatch(sprite)
    if match is None:
        raise ApiError(404, f"no storyboard sprite {sprite!r}: the names are 0.jpg, 1.jpg, …")
    return await _serve(
        request,
        svc,
        video_id,
        keys.storyboard_sprite_key(video_id, int(match[1])),
        JPEG,
        may_redirect=True,
    )
