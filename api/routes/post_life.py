"""A post over its life: unpublish, delete, reschedule, cancel a schedule, list an author's
posts. Every operation answers 202 at once with a job id; repeating one is absorbed; a refusal
(404 unknown or deleted post, 409 too late or not scheduled, 422 bad time) changed nothing."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import READ, WRITE, Services, services
from api.errors import ApiError, error_responses
from api.routes.posts import ID_PATTERN, accepted_or_error, require_json
from spool.models import PostOpKind
from spool.service.views import PostList, PostOpAccepted

router = APIRouter(prefix="/v1", tags=["posts"])
# The states a listed post can be in (a deleted post is listed never).
ListedState = Literal["scheduled", "published", "unpublished"]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    publish_at: str = Field(
        ...,
        description="the new time (ISO 8601 with a zone), in the future, at most a year ahead",
        json_schema_extra={"format": "date-time"},
    )


_OP_ERROR_TEXT = {
    "e404": "no such post, or it was deleted; nothing changed",
    "e409": "the post is not in a state this applies to (e.g. the scheduled time has passed)",
    "e503": "Temporal is unavailable; nothing was done (unless the message says it may still "
    "be applied: then repeat the request, a repeat is absorbed)",
}
_OP_ERRORS = error_responses(401, 404, 409, 422, 503, **_OP_ERROR_TEXT)
# An operation with a JSON body: malformed, too large, or not JSON too.
_BODY_OP_ERRORS = error_responses(400, 401, 404, 409, 413, 415, 422, 503, **_OP_ERROR_TEXT)


async def _operate(
    svc: Services, kind: PostOpKind, post_id: str, publish_at: str | None = None
) -> JSONResponse:
    return await accepted_or_error(
        lambda: svc.posts.operate(kind, post_id, publish_at), "could not hand the operation over"
    )


@router.post(
    "/posts/{post_id}/unpublish",
    status_code=202,
    dependencies=WRITE,
    response_model=PostOpAccepted,
    operation_id="unpublish_post",
    responses=_OP_ERRORS,
)
async def unpublish_post(
    post_id: str = Path(..., pattern=ID_PATTERN), svc: Services = Depends(services)
) -> JSONResponse:
    """Take the post down: out of search and of its author's count, kept to publish again
    (a scheduled post's schedule is dropped). Unpublishing an unpublished post is absorbed."""
    return await _operate(svc, PostOpKind.UNPUBLISH, post_id)


@router.delete(
    "/posts/{post_id}",
    status_code=202,
    dependencies=WRITE,
    response_model=PostOpAccepted,
    operation_id="delete_post",
    responses=_OP_ERRORS,
)
async def delete_post(
    post_id: str = Path(..., pattern=ID_PATTERN), svc: Services = Depends(services)
) -> JSONResponse:
    """Delete the post: then 404, in no search and no count. Publishing the same post id
    later starts it afresh (docs/posts.md)."""
    return await _operate(svc, PostOpKind.DELETE, post_id)


@router.put(
    "/posts/{post_id}/schedule",
    status_code=202,
    dependencies=[*WRITE, Depends(require_json)],
    response_model=PostOpAccepted,
    operation_id="reschedule_post",
    responses=_BODY_OP_ERRORS,
)
async def reschedule_post(
    schedule: ScheduleIn,
    post_id: str = Path(..., pattern=ID_PATTERN),
    svc: Services = Depends(services),
) -> JSONResponse:
    """Move a scheduled post's time (409 once it is published: too late)."""
    return await _operate(svc, PostOpKind.SCHEDULE, post_id, schedule.publish_at)


@router.delete(
    "/posts/{post_id}/schedule",
    status_code=202,
    dependencies=WRITE,
    response_model=PostOpAccepted,
    operation_id="cancel_post_schedule",
    responses=_OP_ERRORS,
)
async def cancel_post_schedule(
    post_id: str = Path(..., pattern=ID_PATTERN), svc: Services = Depends(services)
) -> JSONResponse:
    """Cancel a scheduled publish: the post stays unpublished (409 once it is published: too
    late)."""
    return await _operate(svc, PostOpKind.CANCEL_SCHEDULE, post_id)


@router.get(
    "/posts",
    dependencies=READ,
    response_model=PostList,
    operation_id="list_posts",
    responses=error_responses(401, 422),
)
async def list_posts(
    author_id: str | None = Query(None, pattern=ID_PATTERN),
    state: ListedState | None = Query(None, description="posts in this state only"),
    cursor: str | None = Query(
        None,
        max_length=1600,
        pattern="^([0-9a-f]{2})*$",
        description="the last page's next_cursor",
    ),
    limit: int = Query(20, ge=1, le=100),
    svc: Services = Depends(services),
) -> PostList:
    """Posts (never deleted ones) in post id order, a page at a time."""
    try:
        return await svc.posts.list(
            author_id=author_id,
            state=state,
            cursor=cursor,
            limit=limit,
        )
    except ValueError as exc:
        raise ApiError(422, str(exc), field="cursor") from None
