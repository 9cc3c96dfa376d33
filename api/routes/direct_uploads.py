"""Direct uploads to the store (S3 only): ``POST /v1/uploads/direct`` declares the video and
answers a presigned URL per part; the client PUTs each part there (the bytes skip the API),
then ``POST /v1/uploads/direct/{id}/complete`` has the API check the parts against the
declared length, complete the object and start the job once. Same keys, per-key limits,
expiry and sweep as tus uploads (api/routes/uploads.py); described in docs/storage.md.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import WRITE, Services, services
from api.errors import ApiError
from api.routes.uploads import job_options, owner_key, refused, upload_service
from spool.service.direct import complete_direct, create_direct, is_direct
from spool.service.uploads import UploadRefused, UploadService, http_date
from spool.service.videos import video_url

router = APIRouter(prefix="/v1/uploads/direct", tags=["uploads"], include_in_schema=False)


class DirectUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    length: int = Field(ge=1, description="the video's size in bytes")
    filename: str | None = Field(None, max_length=255)
    captions: bool = True
    renditions: str | None = Field(None, max_length=100, examples=["720p,360p"])
    owner_id: str | None = Field(None, max_length=100)
    callback_url: str | None = Field(None, max_length=2000)
    delete_after: str | None = Field(
        None, max_length=64, description="ISO 8601 with a zone; else SPOOL_VIDEO_RETENTION_DAYS"
    )


class DirectPart(BaseModel):
    number: int
    url: str


class DirectUpload(BaseModel):
    upload_id: str
    video_id: str
    part_bytes: int = Field(description="every part's size but the last's")
    parts: list[DirectPart] = Field(description="PUT part n's bytes to its URL")
    complete_url: str
    expires: str


class DirectCompleted(BaseModel):
    video_id: str
    job_id: str
    status_url: str


@router.post("", dependencies=WRITE, status_code=201, response_model=DirectUpload)
async def create_direct_upload(
    body: DirectUploadRequest,
    request: Request,
    svc: Services = Depends(services),
    uploads: UploadService = Depends(upload_service),
) -> DirectUpload:
    metadata = {"captions": "true" if body.captions else "false"}
    for name in ("filename", "renditions", "owner_id", "callback_url", "delete_after"):
        value = getattr(body, name)
        if value is not None:
            metadata[name] = value
    options = await job_options(svc, metadata)
    try:
        row, urls = await create_direct(uploads, owner_key(request), body.length, options)
    except UploadRefused as exc:
        raise refused(exc) from None
    return DirectUpload(
        upload_id=row.upload_id,
        video_id=row.video_id,
        part_bytes=int(row.options["direct_part_bytes"]),
        parts=[DirectPart(number=n, url=url) for n, url in enumerate(urls, 1)],
        complete_url=f"/v1/uploads/direct/{row.upload_id}/complete",
        expires=http_date(row.expires_at),
    )


@router.post(
    "/{upload_id}/complete", dependencies=WRITE, status_code=202, response_model=DirectCompleted
)
async def complete_direct_upload(
    request: Request, upload_id: str, uploads: UploadService = Depends(upload_service)
) -> DirectCompleted:
    try:
        row = await uploads.find(upload_id, owner_key(request))
        if not is_direct(row):
            raise ApiError(409, "this is a tus upload: send its bytes with PATCH")
        row = await complete_direct(uploads, row)
    except UploadRefused as exc:
        raise refused(exc) from None
    assert row.job_id is not None
    return DirectCompleted(
        video_id=row.video_id, job_id=row.job_id, status_url=video_url(row.video_id)
    )
