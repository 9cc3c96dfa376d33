"""Videos: upload (streamed, capped), list, status, media with byte ranges, cancel."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.deps import READ, WRITE, Services, services
from api.errors import ApiError, error_responses
from api.grants import media_base
from api.media import file_response
from api.uploads import FILE_FIELD, commit, discard, receive_upload
from spool import webhooks
from spool.ingest import new_video_id, video_job_input
from spool.models import JobState
from spool.models.video import RENDITION_HEIGHTS, normalize_renditions
from spool.service import JobEnded, JobNotFound
from spool.service.jobs import start_video
from spool.service.videos import video_url
from spool.service.views import VideoAccepted, VideoCancelling, VideoList, VideoView
from spool.storage import keys

router = APIRouter(prefix="/v1", tags=["videos"])

VIDEO_ID = r"^[A-Za-z0-9_-]{1,100}$"
VideoId = Path(..., pattern=VIDEO_ID, max_length=100)

# The form's fields, as the parsers below read them; the OpenAPI schema states the same
# patterns, so a request the schema calls valid is accepted (docs/ARCHITECTURE.md, API).
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")
_RUNG = "(?:" + "|".join(str(h) for h in RENDITION_HEIGHTS) + ")[pP]?"
# Here and in BOOL_PATTERN each blank matches one way only: with two `[ \t]*` side by side
# around an optional word, a refused value made the match backtrack for minutes, in the
# event loop.
RENDITIONS_PATTERN = rf"^[ \t]*(?:{_RUNG}[ \t]*)?(?:,[ \t]*(?:{_RUNG}[ \t]*)?)*$"
OWNER_PATTERN = r"^[A-Za-z0-9_.@:-]{0,100}$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


BOOL_PATTERN = "^[ \\t]*(?:(?:" + "|".join(_any_case(w) for w in _TRUE + _FALSE) + ")[ \\t]*)?$"


def upload_form_schema(webhooks_enabled: bool) -> dict[str, Any]:
    """The multipart form of an upload; ``callback_url`` only where webhooks are on."""
    properties = {
        FILE_FIELD: {
            "type": "string",
            "format": "binary",
            "minLength": 1,
            "description": "the video; at most settings.max_upload_bytes",
        },
        "captions": {
            "type": "string",
            "pattern": BOOL_PATTERN,
            "example": "true",
            "description": "make captions: true or false (also 1/0, on/off, yes/no); default true",
        },
        "renditions": {
            "type": "string",
            "pattern": RENDITIONS_PATTERN,
            "example": "720p,360p",
            "description": "comma-separated rungs of the ladder "
            f"({', '.join(f'{h}p' for h in RENDITION_HEIGHTS)}); "
            "default: every rung up to the source's height",
        },
        "owner_id": {
            "type": "string",
            "pattern": OWNER_PATTERN,
            "description": "who is notified (default `api`)",
        },
    }
    if webhooks_enabled:
        properties["callback_url"] = {
            "type": "string",
            "format": "uri",
            "description": "receives signed webhooks; must resolve to a public address "
            "unless the server allows private ones",
        }
    return {"type": "object", "required": [FILE_FIELD], "properties": properties}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": upload_form_schema(webhooks_enabled=True)}},
    }
}


def _bool_field(value: str | None, name: str, default: bool) -> bool:
    v = (value or "").strip(" \t").lower()
    if v == "":
        return default
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ApiError(422, f"{name}: must be true or false", field=name)


def _renditions_field(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        if not re.fullmatch(RENDITIONS_PATTERN, value):
            ladder = ", ".join(f"{h}p" for h in RENDITION_HEIGHTS)
            raise ApiError(
                422,
                f"renditions: {value!r} is not a comma-separated list of {ladder}",
                field="renditions",
            )
    names = [part for value in values or [] for part in value.split(",")]
    try:
        return normalize_renditions(names)
    except ValueError as exc:
        raise ApiError(422, str(exc), field="renditions") from None


def _owner_field(value: str | None) -> str:
    if not re.fullmatch(OWNER_PATTERN, value or ""):
        raise ApiError(
            422, "owner_id: letters, digits and _.@:- only, at most 100", field="owner_id"
        )
    return value or "api"


async def check_callback_url(
    svc: Services, url: str | None, field: str = "callback_url"
) -> str | None:
    """Refuse at the door: malformed, non-public, or webhooks not enabled here."""
    if url is None or url == "":
        return None
    s = svc.settings
    if not webhooks_enabled(svc):
        raise ApiError(
            422,
            f"{field}: webhooks are not enabled on this server "
            "(SPOOL_NOTIFIER=webhook and SPOOL_WEBHOOK_SECRET)",
            field=field,
        )
    try:
        await asyncio.to_thread(webhooks.check_destination, s, url)
    except webhooks.WebhookRefused as exc:
        raise ApiError(422, f"{field}: {exc}", field=field) from None
    return url


def webhooks_enabled(svc: Services) -> bool:
    return svc.settings.notifier == "webhook" and bool(svc.settings.webhook_secret)


@router.post(
    "/videos",
    status_code=202,
    dependencies=WRITE,
    openapi_extra=UPLOAD_BODY,
    operation_id="upload_video",
    response_model=VideoAccepted,
    responses={
        202: {
            "headers": {
                "Location": {"description": "the video's status URL", "schema": {"type": "string"}}
            },
            "links": {
                "GetVideo": {
                    "operationId": "video_status",
                    "parameters": {"video_id": "$response.body#/video_id"},
                },
                "CancelVideoJob": {
                    "operationId": "cancel_video_job",
                    "parameters": {"video_id": "$response.body#/video_id"},
                },
            },
        },
        **error_responses(
            400,
            401,
            413,
            415,
            422,
            503,
            e503="the upload was stored but its job could not be started; nothing is kept, retry",
        ),
    },
)
async def upload_video(request: Request, svc: Services = Depends(services)) -> JSONResponse:
    """Store the upload and start its job; answers as soon as the job has started."""
    s = svc.settings
    video_id = new_video_id()
    upload = await receive_upload(
        request,
        svc.storage,
        keys.source_key(video_id),
        max_bytes=s.max_upload_bytes,
        chunk_bytes=s.api_upload_chunk_bytes,
    )
    try:
        captions = _bool_field(upload.get("captions"), "captions", True)
        renditions = _renditions_field(upload.fields.get("renditions"))
        callback_url = await check_callback_url(svc, upload.get("callback_url"))
        owner_id = _owner_field(upload.get("owner_id"))
        await commit(upload)
    except BaseException:
        await asyncio.shield(discard(upload))
        raise
    inp = video_job_input(
        s,
        video_id,
        owner_id=owner_id,
        captions=captions,
        renditions=renditions,
        callback_url=callback_url,
    )
    try:
        started = await start_video(svc.client, s, inp)
    except Exception as exc:
        await asyncio.to_thread(svc.storage.delete_prefix, keys.video_prefix(video_id))
        raise ApiError(503, f"could not start the job: {exc}") from None
    accepted = VideoAccepted(
        video_id=video_id,
        job_id=started.job_id,
        status_url=video_url(video_id),
        state=JobState.PROCESSING,
        bytes=upload.file_bytes,
    )
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=202, headers={"Location": accepted.status_url}
    )


@router.get(
    "/videos", dependencies=READ, response_model=VideoList, responses=error_responses(401, 422)
)
async def videos_list(
    limit: int = Query(20, ge=1, le=100), svc: Services = Depends(services)
) -> VideoList:
    """Recent videos, newest first: recorded ones from the database, plus jobs that are
    started but not yet recorded by a worker (from Temporal)."""
    return await svc.videos.recent(limit)


@router.get(
    "/videos/{video_id}",
    dependencies=READ,
    response_model=VideoView,
    operation_id="video_status",
    responses=error_responses(401, 404, 422),
)
async def video_status(video_id: str = VideoId, svc: Services = Depends(services)) -> VideoView:
    """State, per-step progress, metadata, media URLs, captions and errors of one video.
    With private reads the media URLs carry a read grant: a browser fetches them without
    the key (api/grants.py)."""
    view = await svc.videos.view(video_id, media_base(svc.settings, video_id, svc.clock()))
    if view is None:
        raise ApiError(404, f"no video {video_id!r}")
    return view


def _media_responses(media_type: str) -> dict[int | str, Any]:
    body = {"content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}
    return {
        200: {"description": "the whole file", **body},
        206: {"description": "the requested byte range", **body},
        307: {
            "description": "a short-lived presigned URL of the file (SPOOL_MEDIA_REDIRECT with S3)"
        },
        **error_responses(401, 404, 416, 422, e404="no such video, or this file is not made (yet)"),
    }


async def _serve(
    request: Request,
    svc: Services,
    video_id: str,
    which: str,
    media_type: str,
    name: str | None = None,
) -> Response:
    key = await svc.videos.media_key(video_id, which, name)
    if key is None:
        raise ApiError(404, f"video {video_id!r} has no {name or which} (yet)")
    return await file_response(
        request,
        svc.storage,
        key,
        media_type,
        redirect_seconds=svc.settings.presigned_url_seconds
        if svc.settings.media_redirect
        else None,
    )


MP4, JPEG = "video/mp4", "image/jpeg"
VTT, SRT = "text/vtt; charset=utf-8", "application/x-subrip; charset=utf-8"


@router.get(
    "/videos/{video_id}/renditions/{name}",
    dependencies=READ,
    response_class=Response,
    responses=_media_responses(MP4),
)
async def rendition_file(
    request: Request,
    video_id: str = VideoId,
    name: str = Path(..., pattern=r"^\d{2,4}p$"),
    svc: Services = Depends(services),
) -> Response:
    """One rendition (MP4), with Range support."""
    return await _serve(request, svc, video_id, "rendition", MP4, name)


@router.get(
    "/videos/{video_id}/poster.jpg",
    dependencies=READ,
    response_class=Response,
    responses=_media_responses(JPEG),
)
async def poster_file(
    request: Request, video_id: str = VideoId, svc: Services = Depends(services)
) -> Response:
    """The poster frame (JPEG)."""
    return await _serve(request, svc, video_id, "poster", JPEG)


@router.get(
    "/videos/{video_id}/captions.vtt",
    dependencies=READ,
    response_class=Response,
    responses=_media_responses(VTT),
)
async def captions_vtt(
    request: Request, video_id: str = VideoId, svc: Services = Depends(services)
) -> Response:
    """The captions as WebVTT."""
    return await _serve(request, svc, video_id, "vtt", VTT)


@router.get(
    "/videos/{video_id}/captions.srt",
    dependencies=READ,
    response_class=Response,
    responses=_media_responses(SRT),
)
async def captions_srt(
    request: Request, video_id: str = VideoId, svc: Services = Depends(services)
) -> Response:
    """The captions as SubRip."""
    return await _serve(request, svc, video_id, "srt", SRT)


@router.delete(
    "/videos/{video_id}/job",
    status_code=202,
    dependencies=WRITE,
    operation_id="cancel_video_job",
    response_model=VideoCancelling,
    responses=error_responses(
        401, 404, 409, 422, 503, e404="no job for this video", e409="the job has already ended"
    ),
)
async def cancel_video_job(
    video_id: str = VideoId, svc: Services = Depends(services)
) -> VideoCancelling:
    """Ask the running job to stop; it records and announces the cancel itself."""
    try:
        return await svc.videos.cancel(video_id)
    except JobNotFound:
        raise ApiError(404, f"no job for video {video_id!r}") from None
    except JobEnded as exc:
        raise ApiError(409, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Temporal unreachable or refusing
        raise ApiError(503, f"Temporal unavailable: {exc}") from None
