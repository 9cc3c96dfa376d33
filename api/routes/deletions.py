"""Deleting a video: accepted at once with its deletion job's id (spool/service/deletion.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from api.deps import WRITE, Services, services
from api.errors import ApiError, error_responses
from spool.service.deletion import VideoNotFound, delete_video
from spool.service.views import VideoDeleting

router = APIRouter(prefix="/v1", tags=["videos"])

VideoId = Path(..., pattern=r"^[A-Za-z0-9_-]{1,100}$", max_length=100)


@router.delete(
    "/videos/{video_id}",
    status_code=202,
    dependencies=WRITE,
    operation_id="delete_video",
    response_model=VideoDeleting,
    responses=error_responses(
        401,
        404,
        422,
        503,
        e404="no such video: nothing was changed",
        e503="Temporal unavailable: nothing was changed, retry",
    ),
)
async def delete_video_route(
    video_id: str = VideoId, svc: Services = Depends(services)
) -> VideoDeleting:
    """Delete the video: from this answer on, it and its media answer 404. Its job, if it
    runs, is cancelled and waited for; then every object and row of the video goes and
    ``video.deleted`` is announced. Repeating the delete answers the same job."""
    try:
        return await delete_video(svc.client, svc.settings, svc.engine, video_id)
    except VideoNotFound:
        raise ApiError(404, f"no video {video_id!r}: nothing was deleted") from None
    except Exception as exc:  # noqa: BLE001 - Temporal unreachable or refusing
        raise ApiError(503, f"Temporal unavailable: {exc}") from None
