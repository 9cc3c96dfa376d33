"""Resumable uploads: tus 1.0 at /v1/uploads (core, creation, creation-with-upload,
termination, expiration, checksum with sha1), behind the same API keys as every write.

The last byte of an upload starts its video's job, once, and the answer names it in
``Spool-Video-Id`` and ``Spool-Job-Id`` (a tus answer has no body); the video's status is at
``Spool-Status-Url``. ``Upload-Metadata`` carries the job's options as the form of
``POST /v1/videos`` does: ``filename``, ``filetype`` (kept for the record only),
``captions``, ``renditions``, ``owner_id``, ``callback_url``. The protocol's headers are
the interface, so these routes are described in docs/storage.md and the README rather
than in /openapi.json.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, Response

import api.tus as tus
from api.deps import WRITE, Services, services
from api.errors import ApiError
from api.routes.videos import check_callback_url
from api.upload_form import bool_field, owner_field, renditions_field, retention_time
from spool.db.uploads import COMPLETE, RECEIVING, UploadRow
from spool.service.direct import is_direct
from spool.service.receive import BodyInterrupted, receive
from spool.service.uploads import UploadRefused, UploadService, http_date, key_id
from spool.service.videos import video_url

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], include_in_schema=False)
vendor_router = APIRouter(include_in_schema=False)
STATIC = FilePath(__file__).resolve().parent.parent / "static"
# The page's tus client: `make install` (npm ci) in a checkout; the image packs a copy.
TUS_JS = (
    STATIC.parent.parent / "node_modules/tus-js-client/dist/tus.min.js",
    STATIC / "tus.min.js",
)
UploadId = Path(..., pattern=r"^[0-9a-f]{32}$")


def upload_service(svc: Services = Depends(services)) -> UploadService:
    return UploadService(svc.settings, svc.engine, svc.storage, svc.client, clock=svc.clock)


def owner_key(request: Request) -> str:
    """The digest of the request's API key (require_key has checked it)."""
    return key_id(request.headers.get("authorization", "").partition(" ")[2].strip())


def refused(exc: UploadRefused) -> ApiError:
    return ApiError(exc.status, exc.message, headers=tus.tus_headers(**(exc.headers or {})))


def upload_headers(row: UploadRow) -> dict[str, str]:
    """Where the upload stands, and its video and job once it has them."""
    headers = tus.tus_headers(Upload_Offset=str(row.received), Cache_Control="no-store")
    headers["Spool-Video-Id"] = row.video_id
    if row.state == RECEIVING:
        headers["Upload-Expires"] = http_date(row.expires_at)
    if row.job_id:
        headers["Spool-Job-Id"] = row.job_id
        headers["Spool-Status-Url"] = video_url(row.video_id)
    return headers


@router.options("")
@router.options("/{upload_id}")
async def capabilities(svc: Services = Depends(services)) -> Response:
    """What this server speaks (no key needed, as tus clients ask before anything)."""
    headers = tus.tus_headers(
        Tus_Version=tus.VERSION,
        Tus_Extension=tus.EXTENSIONS,
        Tus_Max_Size=str(svc.settings.max_upload_bytes),
        Tus_Checksum_Algorithm=tus.CHECKSUM_ALGORITHMS,
    )
    return Response(status_code=204, headers=headers)


async def job_options(svc: Services, metadata: dict[str, str]) -> dict[str, Any]:
    """The job's options from Upload-Metadata, checked as the upload form's are."""
    renditions = metadata.get("renditions")
    now = datetime.fromtimestamp(svc.clock(), UTC)
    delete_at = retention_time(metadata.get("delete_after"), svc.settings.video_retention_days, now)
    return {
        "captions": bool_field(metadata.get("captions"), "captions", True),
        "renditions": renditions_field([renditions] if renditions is not None else None),
        "owner_id": owner_field(metadata.get("owner_id")),
        "callback_url": await check_callback_url(svc, metadata.get("callback_url")),
        # Fixed when the upload begins, as a form upload's is when it arrives.
        "delete_after": delete_at.isoformat() if delete_at else None,
        "filename": (metadata.get("filename") or "")[:255],
        "filetype": (metadata.get("filetype") or "")[:100],
    }


@router.post("", dependencies=WRITE, status_code=201)
async def create_upload(
    request: Request,
    svc: Services = Depends(services),
    uploads: UploadService = Depends(upload_service),
) -> Response:
    """Creation (and creation-with-upload: a body is the upload's first bytes)."""
    tus.check_version(request)
    length = tus.number_header(request, "Upload-Length")
    if length is None:
        problem = "Upload-Length is required (Upload-Defer-Length is not supported)"
        raise ApiError(400, problem, field="Upload-Length", headers=tus.tus_headers())
    raw = request.headers.get("upload-metadata", "")
    options = await job_options(svc, tus.parse_metadata(raw))
    has_body = (tus.number_header(request, "Content-Length") or 0) > 0 or (
        "chunked" in request.headers.get("transfer-encoding", "")
    )
    if has_body:
        tus.check_content_type(request)
    try:
        row = await uploads.create(owner_key(request), length, options, raw)
    except UploadRefused as exc:
        raise refused(exc) from None
    headers = {"Location": f"/v1/uploads/{row.upload_id}"}
    if has_body:
        try:
            row = await _receive(request, uploads, row, svc)
        except ApiError as exc:  # the upload exists all the same: say where, to resume it
            exc.headers = {**(exc.headers or {}), **headers}
            raise
    return Response(status_code=201, headers={**upload_headers(row), **headers})


@router.head("/{upload_id}", dependencies=WRITE)
async def upload_offset(
    request: Request,
    upload_id: str = UploadId,
    uploads: UploadService = Depends(upload_service),
) -> Response:
    """The offset to resume from. A complete upload's job is started here if its start
    failed before, so a client that saw the last byte in sees its job too."""
    tus.check_version(request)
    try:
        row = await uploads.find(upload_id, owner_key(request))
        if row.state == COMPLETE:
            await uploads.ensure_job(row)
    except UploadRefused as exc:
        raise refused(exc) from None
    headers = upload_headers(row)
    headers["Upload-Length"] = str(row.length)
    if row.raw_metadata:
        headers["Upload-Metadata"] = row.raw_metadata
    return Response(status_code=200, headers=headers)


@router.patch("/{upload_id}", dependencies=WRITE, status_code=204)
async def append_bytes(
    request: Request,
    upload_id: str = UploadId,
    svc: Services = Depends(services),
    uploads: UploadService = Depends(upload_service),
) -> Response:
    """Bytes at the upload's offset; the last one starts the job."""
    tus.check_version(request)
    tus.check_content_type(request)
    offset = tus.number_header(request, "Upload-Offset")
    if offset is None:
        raise ApiError(400, "Upload-Offset is required", field="Upload-Offset")
    try:
        row = await uploads.find(upload_id, owner_key(request))
        if is_direct(row):
            raise UploadRefused(409, "this is a direct upload: PUT its parts to their URLs")
        if row.state == COMPLETE and offset == row.length:
            await uploads.ensure_job(row)  # a repeated last request: the same job
            return Response(status_code=204, headers=upload_headers(row))
    except UploadRefused as exc:
        raise refused(exc) from None
    if offset != row.received:
        raise ApiError(
            409,
            f"Upload-Offset {offset} is not the upload's offset {row.received}: "
            "HEAD the upload and resume from there",
            field="Upload-Offset",
            headers=upload_headers(row),
        )
    declared = tus.number_header(request, "Content-Length")
    if declared is not None and offset + declared > row.length:
        raise ApiError(
            413,
            f"the body goes past Upload-Length {row.length}: at most "
            f"{row.length - offset} more bytes fit",
            headers={**upload_headers(row), "Connection": "close"},
        )
    row = await _receive(request, uploads, row, svc)
    return Response(status_code=204, headers=upload_headers(row))


async def _receive(
    request: Request, uploads: UploadService, row: UploadRow, svc: Services
) -> UploadRow:
    checksum = tus.parse_checksum(request.headers.get("upload-checksum"))
    body = tus.body_chunks(request, svc.settings.upload_idle_seconds)
    try:
        received = await receive(uploads, row, body, checksum)
    except UploadRefused as exc:
        raise refused(exc) from None
    if received.interrupted is not None:
        cut: BodyInterrupted = received.interrupted
        raise ApiError(
            cut.status,
            str(cut),
            headers={**upload_headers(received.row), "Connection": "close"},
        )
    return received.row


@router.delete("/{upload_id}", dependencies=WRITE, status_code=204)
async def terminate_upload(
    request: Request,
    upload_id: str = UploadId,
    uploads: UploadService = Depends(upload_service),
) -> Response:
    """Termination: the upload and every byte it holds are dropped."""
    tus.check_version(request)
    try:
        row = await uploads.find(upload_id, owner_key(request))
        await uploads.terminate(row)
    except UploadRefused as exc:
        raise refused(exc) from None
    return Response(status_code=204, headers=tus.tus_headers())


@vendor_router.get("/vendor/tus.min.js")
def tus_js() -> FileResponse:  # sync: FastAPI runs it in a thread (it stats files)
    found = next((path for path in TUS_JS if path.is_file()), None)
    if found is None:
        raise ApiError(404, "tus-js-client is not installed: run `make install` (npm ci)")
    return FileResponse(found, media_type="text/javascript")
