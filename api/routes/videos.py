"""Videos: upload (streamed, capped), list, status, media with byte ranges, cancel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.deps import READ, WRITE, Services, services
from api.errors import ApiError, error_responses
from api.grants import media_base
from api.media import file_response
from api.sources import checked_source_url
from api.upload_form import (
    UPLOAD_BODY,
    bool_field,
    owner_field,
    renditions_field,
    retention_time,
)
from api.uploads import commit, discard, receive_upload
from spool import webhooks
from spool.db.video import CURSOR_PATTERN
from spool.ingest import new_video_id, video_job_input
from spool.models import JobState
from spool.service import JobEnded, JobNotFound
from spool.service.deletion import schedule_retention
from spool.service.jobs import start_video
from spool.service.videos import video_url
from spool.service.views import VideoAccepted, VideoCancelling, VideoList, VideoView
from spool.storage import keys

router = APIRouter(prefix="/v1", tags=["videos"])

VIDEO_ID = r"^[A-Za-z0-9_-]{1,100}$"
VideoId = Path(..., pattern=VIDEO_ID, max_length=100)


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
    return "webhook" in svc.settings.notifier_kinds and bool(svc.settings.webhook_secret)


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
    """Store the upload (or take its source_url, fetched by the job) and start its job;
    answers as soon as the job has started."""
    s = svc.settings
    video_id = new_video_id()
    upload = await receive_upload(
        request,
        svc.storage,
        keys.source_key(video_id),
        max_bytes=s.max_upload_bytes,
        chunk_bytes=s.api_upload_chunk_bytes,
        require_file=False,
    )
    try:
        source_url = await checked_source_url(s, upload)
        captions = bool_field(upload.get("captions"), "captions", True)
        renditions = renditions_field(upload.fields.get("renditions"))
        callback_url = await check_callback_url(svc, upload.get("callback_url"))
        owner_id = owner_field(upload.get("owner_id"))
        now = datetime.fromtimestamp(svc.clock(), UTC)
        delete_at = retention_time(upload.get("delete_after"), s.video_retention_days, now)
        if upload.pending is not None:
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
        source_url=source_url,
    )
    try:
        # The retention first: a job never runs without the deletion it was promised.
        if delete_at is not None:
            await schedule_retention(svc.client, s, video_id, delete_at)
        started = await start_video(
            svc.client, s, inp, file_name=upload.filename, size_bytes=upload.file_bytes or None
        )
    except Exception as exc:
        await asyncio.to_thread(svc.storage.delete_prefix, keys.video_prefix(video_id))
        raise ApiError(503, f"could not start the job: {exc}") from None
    accepted = VideoAccepted(
        video_id=video_id,
        job_id=started.job_id,
        status_url=video_url(video_id),
        state=JobState.PROCESSING,
        bytes=upload.file_bytes,
        delete_after=delete_at.isoformat() if delete_at else None,
    )
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=202, headers={"Location": accepted.status_url}
    )


@router.get(
    "/videos", dependencies=READ, response_model=VideoList, responses=error_responses(401, 422)
)
async def videos_list(
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(
        None, pattern=CURSOR_PATTERN, description="the `next_cursor` of the page before"
    ),
    svc: Services = Depends(services),
) -> VideoList:
    """Videos, newest first, a page at a time (keyset pages: follow ``next_cursor``): recorded
    ones from the database, and on the first page jobs started but not yet recorded by a
    worker (from Temporal). Deleted videos are never listed."""
    try:
        return await svc.videos.recent(limit, cursor)
    except ValueError as exc:
        raise ApiError(422, str(exc), field="cursor") from None


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
