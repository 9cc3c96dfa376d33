"""Video endpoints: upload (streamed, capped), status, list, media with ranges, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from api.app import READ, WRITE, Services, services
from api.errors import ApiError
from api.media import file_response
from api.uploads import FILE_FIELD, commit, discard, receive_upload
from spool import webhooks
from spool.db.video import get_video, list_videos
from spool.ingest import new_video_id, start_video_job, video_job_input
from spool.models import FINAL_JOB_STATES, CaptionsState, JobState
from spool.models.video import normalize_renditions, video_workflow_id
from spool.status import JobNotFound, job_status
from spool.storage import keys

router = APIRouter(prefix="/v1", tags=["videos"])

VIDEO_ID = r"^[A-Za-z0-9_-]{1,100}$"
OWNER_ID = re.compile(r"^[A-Za-z0-9_.@:-]{1,100}$")
LIVE_STATUS_TIMEOUT = 4.0
_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}
# Final jobs no longer change: their step lists are kept rather than asked for again.
_final_steps: dict[str, list] = {}

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": [FILE_FIELD],
            "properties": {
                FILE_FIELD: {"type": "string", "format": "binary",
                             "description": "the video; at most settings.max_upload_bytes"},
                "captions": {"type": "string", "enum": ["true", "false"],
                             "description": "make captions (default true)"},
                "renditions": {"type": "string", "example": "720p,360p",
                               "description": "comma-separated subset of the ladder"},
                "callback_url": {"type": "string", "format": "uri",
                                 "description": "receives a signed webhook when the job ends"},
                "owner_id": {"type": "string", "description": "who is notified"},
            },
        }}},
    }
}


def _bool_field(value: str | None, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ApiError(422, f"{name}: must be true or false", field=name)


def _renditions_field(values: list[str] | None) -> list[str] | None:
    names = [part for value in values or [] for part in value.split(",")]
    try:
        return normalize_renditions(names)
    except ValueError as exc:
        raise ApiError(422, str(exc), field="renditions") from None


async def check_callback_url(svc: Services, url: str | None, field: str = "callback_url"
                             ) -> str | None:
    """Refuse at the door: malformed, non-public, or webhooks not enabled here."""
    if url is None or url == "":
        return None
    s = svc.settings
    if s.notifier != "webhook" or not s.webhook_secret:
        raise ApiError(422, f"{field}: webhooks are not enabled on this server "
                            "(SPOOL_NOTIFIER=webhook and SPOOL_WEBHOOK_SECRET)", field=field)
    try:
        await asyncio.to_thread(webhooks.check_destination, s, url)
    except webhooks.WebhookRefused as exc:
        raise ApiError(422, f"{field}: {exc}", field=field) from None
    return url


@router.post("/videos", status_code=202, dependencies=WRITE, openapi_extra=UPLOAD_BODY,
             responses={413: {"description": "larger than the upload limit"}})
async def upload_video(request: Request, svc: Services = Depends(services)) -> JSONResponse:
    """Store the upload and start its job; answers as soon as the job has started."""
    s = svc.settings
    video_id = new_video_id()
    source_key = keys.source_key(video_id)
    upload = await receive_upload(request, svc.storage, source_key,
                                  max_bytes=s.max_upload_bytes,
                                  chunk_bytes=s.api_upload_chunk_bytes)
    try:
        captions = _bool_field(upload.get("captions"), "captions", True)
        renditions = _renditions_field(upload.fields.get("renditions"))
        callback_url = await check_callback_url(svc, upload.get("callback_url"))
        owner_id = upload.get("owner_id") or "api"
        if not OWNER_ID.match(owner_id):
            raise ApiError(422, "owner_id: letters, digits and _.@:- only, at most 100",
                           field="owner_id")
        await commit(upload)
    except BaseException:
        await asyncio.shield(discard(upload))
        raise
    inp = video_job_input(s, video_id, owner_id=owner_id, captions=captions,
                          renditions=renditions, callback_url=callback_url)
    try:
        await start_video_job(svc.client, s, inp)
    except Exception as exc:
        await asyncio.to_thread(svc.storage.delete_prefix, keys.video_prefix(video_id))
        raise ApiError(503, f"could not start the job: {exc}") from None
    status_url = f"/v1/videos/{video_id}"
    return JSONResponse(
        {"video_id": video_id, "job_id": video_workflow_id(video_id), "status_url": status_url,
         "state": JobState.PROCESSING, "bytes": upload.file_bytes},
        status_code=202, headers={"Location": status_url})


@router.get("/videos", dependencies=READ)
async def videos_list(limit: int = Query(20, ge=1, le=100),
                      svc: Services = Depends(services)) -> dict[str, Any]:
    """Recent videos, newest first: recorded ones from the database, plus jobs that are
    started but not yet recorded by a worker (from Temporal)."""
    rows = await asyncio.to_thread(list_videos, svc.engine, limit)
    items = [_summary(row) for row in rows]
    known = {item["video_id"] for item in items}
    for video_id, state, started in await _unrecorded_jobs(svc, limit):
        if video_id not in known:
            items.append({"video_id": video_id, "job_id": video_workflow_id(video_id),
                          "state": state, "captions_state": None, "created_at": started,
                          "status_url": f"/v1/videos/{video_id}"})
    items.sort(key=lambda i: i.get("created_at") or "", reverse=True)
    return {"videos": items[:limit]}


async def _unrecorded_jobs(svc: Services, limit: int) -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = []

    async def collect() -> None:
        async for wf in svc.client.list_workflows(
                "WorkflowType = 'VideoPipelineWorkflow' AND ExecutionStatus = 'Running'",
                limit=limit):
            if wf.id.startswith("video-") and not wf.id.endswith("-captions"):
                started = wf.start_time.isoformat() if wf.start_time else None
                found.append((wf.id.removeprefix("video-"), JobState.PROCESSING, started))

    # The list is a convenience; the database is the record.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(collect(), 3)
    return found


def _summary(row: dict) -> dict[str, Any]:
    return {"video_id": row["video_id"], "job_id": video_workflow_id(row["video_id"]),
            "state": row["status"], "captions_state": row.get("captions_state"),
            "created_at": row.get("created_at"),
            "status_url": f"/v1/videos/{row['video_id']}"}


async def _live(svc: Services, video_id: str) -> dict | None:
    """The workflow's own view; None if Temporal has no such job."""
    handle = svc.client.get_workflow_handle(video_workflow_id(video_id))
    try:
        desc = await asyncio.wait_for(handle.describe(), LIVE_STATUS_TIMEOUT)
    except RPCError as exc:
        if "not found" in str(exc).lower():
            return None
        return {"steps": [], "unavailable": f"Temporal: {exc}"}
    except TimeoutError:
        return {"steps": [], "unavailable": "Temporal did not answer in time"}
    if desc.status == WorkflowExecutionStatus.RUNNING and (desc.history_length or 0) <= 3:
        # Started, first task not yet completed: no worker has picked the job up, and a
        # query would only wait for one.
        return {"state": JobState.PROCESSING, "steps": [],
                "unavailable": "waiting for a worker"}
    try:
        return await asyncio.wait_for(job_status(svc.client, video_workflow_id(video_id)),
                                      LIVE_STATUS_TIMEOUT)
    except JobNotFound:
        return None
    except (TimeoutError, RPCError) as exc:
        return {"steps": [], "unavailable": f"{type(exc).__name__}: {exc}"}


async def _video_state(svc: Services, video_id: str) -> tuple[dict | None, dict | None]:
    row = await asyncio.to_thread(get_video, svc.engine, video_id)
    if row is not None and row["status"] in FINAL_JOB_STATES:
        if video_id in _final_steps:
            return row, {"steps": _final_steps[video_id]}
        live = await _live(svc, video_id)
        # Only a closed workflow's steps are final: a job's state is decided (and recorded)
        # before its owner's notice goes out, so until then the notify step still changes.
        if live is not None and live.get("workflow_status") not in (None, "RUNNING") \
                and live.get("steps"):
            if len(_final_steps) > 10_000:
                _final_steps.clear()
            _final_steps[video_id] = live["steps"]
        return row, live
    return row, await _live(svc, video_id)


def _keys(row: dict | None, live: dict | None) -> dict[str, Any]:
    """Storage keys of a video's outputs: the database's record, else the workflow's."""
    row = row or {}
    live = live or {}
    renditions = row.get("renditions") or live.get("renditions") or []
    poster = row.get("poster_key") or (live.get("poster") or {}).get("key")
    captions = row.get("captions") or {}
    live_captions = live.get("captions") or {}
    vtt = captions.get("vtt") or live_captions.get("vtt_key")
    srt = captions.get("srt") or live_captions.get("srt_key")
    return {"renditions": {r["name"]: r for r in renditions if r.get("name")},
            "poster": poster, "vtt": vtt, "srt": srt}


def _view(video_id: str, row: dict | None, live: dict | None) -> dict[str, Any]:
    base = f"/v1/videos/{video_id}"
    live = live or {}
    state = (row or {}).get("status") or live.get("state") or JobState.PROCESSING
    if live.get("state") in FINAL_JOB_STATES and state not in FINAL_JOB_STATES:
        state = live["state"]
    keys = _keys(row, live)
    captions_state = (row or {}).get("captions_state") or live.get("captions_state")
    has_captions = captions_state == CaptionsState.AVAILABLE and keys["vtt"]
    errors = dict((row or {}).get("errors") or {})
    renditions = sorted(keys["renditions"].values(), key=lambda r: -int(r.get("height", 0)))
    return {
        "video_id": video_id,
        "job_id": video_workflow_id(video_id),
        "state": state,
        "steps": live.get("steps", []),
        "metadata": (row or {}).get("metadata") or live.get("probe"),
        "renditions": [{"name": r["name"], "width": r.get("width"), "height": r.get("height"),
                        "bitrate_kbps": r.get("bitrate_kbps"), "size_bytes": r.get("size_bytes"),
                        "url": f"{base}/renditions/{r['name']}"} for r in renditions],
        "poster_url": f"{base}/poster.jpg" if keys["poster"] else None,
        "captions": {
            "state": captions_state,
            "language": (row or {}).get("captions_language"),
            "vtt_url": f"{base}/captions.vtt" if has_captions else None,
            "srt_url": f"{base}/captions.srt" if has_captions and keys["srt"] else None,
        },
        "error": live.get("error"),
        "errors": errors,
        "status_unavailable": live.get("unavailable"),
        "created_at": (row or {}).get("created_at"),
        "updated_at": (row or {}).get("updated_at"),
    }


VideoId = Path(..., pattern=VIDEO_ID, max_length=100)


@router.get("/videos/{video_id}", dependencies=READ)
async def video_status(video_id: str = VideoId,
                       svc: Services = Depends(services)) -> dict[str, Any]:
    """State, per-step progress, metadata, media URLs, captions and errors of one video."""
    row, live = await _video_state(svc, video_id)
    if row is None and live is None:
        raise ApiError(404, f"no video {video_id!r}")
    return _view(video_id, row, live)


async def _media_key(svc: Services, video_id: str, which: str, name: str | None = None) -> str:
    row = await asyncio.to_thread(get_video, svc.engine, video_id)
    keys = _keys(row, None)
    if (which == "rendition" and name not in keys["renditions"]) or (
            which != "rendition" and not keys[which]):
        # Not recorded yet: the running workflow may already know it.
        live = await _live(svc, video_id)
        keys = _keys(row, live)
    if which == "rendition":
        rendition = keys["renditions"].get(name)
        key = rendition.get("key") if rendition else None
    else:
        key = keys[which]
    if not key:
        raise ApiError(404, f"video {video_id!r} has no {name or which} (yet)")
    return key


async def _serve(request: Request, svc: Services, key: str, media_type: str | None = None
                 ) -> Response:
    return await file_response(request, svc.storage, key, media_type,
                               redirect_seconds=svc.settings.presigned_url_seconds
                               if svc.settings.media_redirect else None)


@router.get("/videos/{video_id}/renditions/{name}", dependencies=READ,
            response_class=Response, responses={206: {"description": "partial content"}})
async def rendition_file(request: Request, video_id: str = VideoId,
                         name: str = Path(..., pattern=r"^\d{2,4}p$"),
                         svc: Services = Depends(services)) -> Response:
    """One rendition (MP4), with Range support."""
    key = await _media_key(svc, video_id, "rendition", name)
    return await _serve(request, svc, key, "video/mp4")


@router.get("/videos/{video_id}/poster.jpg", dependencies=READ, response_class=Response,
            responses={206: {"description": "partial content"}})
async def poster_file(request: Request, video_id: str = VideoId,
                      svc: Services = Depends(services)) -> Response:
    key = await _media_key(svc, video_id, "poster")
    return await _serve(request, svc, key, "image/jpeg")


@router.get("/videos/{video_id}/captions.vtt", dependencies=READ, response_class=Response,
            responses={206: {"description": "partial content"}})
async def captions_vtt(request: Request, video_id: str = VideoId,
                       svc: Services = Depends(services)) -> Response:
    key = await _media_key(svc, video_id, "vtt")
    return await _serve(request, svc, key, "text/vtt; charset=utf-8")


@router.get("/videos/{video_id}/captions.srt", dependencies=READ, response_class=Response,
            responses={206: {"description": "partial content"}})
async def captions_srt(request: Request, video_id: str = VideoId,
                       svc: Services = Depends(services)) -> Response:
    key = await _media_key(svc, video_id, "srt")
    return await _serve(request, svc, key, "application/x-subrip; charset=utf-8")


@router.delete("/videos/{video_id}/job", status_code=202, dependencies=WRITE)
async def cancel_video_job(video_id: str = VideoId,
                           svc: Services = Depends(services)) -> dict[str, Any]:
    """Ask the running job to stop; it records and announces the cancel itself."""
    handle = svc.client.get_workflow_handle(video_workflow_id(video_id))
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if "not found" in str(exc).lower():
            raise ApiError(404, f"no job for video {video_id!r}") from None
        raise ApiError(503, f"Temporal unavailable: {exc}") from None
    if desc.status != WorkflowExecutionStatus.RUNNING:
        status = desc.status.name.lower() if desc.status else "closed"
        raise ApiError(409, f"the job has already ended ({status})")
    await handle.cancel()
    return {"video_id": video_id, "job_id": handle.id, "state": "cancelling"}
