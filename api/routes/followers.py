"""The follower graph: who is told when an author publishes a post without a `followers`
list. Any size: the fan-out reads it a page at a time (docs/notifications.md). A large
import goes through `spool followers-import FILE` (JSON lines, streamed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Response

from api.deps import READ, WRITE, Services, services
from api.errors import ApiError, error_responses
from api.routes.posts import ID_PATTERN
from spool.db.followers import FOLLOWER_ID_MAX
from spool.service.followers import (
    DEFAULT_PAGE,
    MAX_PAGE,
    FollowerEdge,
    FollowerRemoved,
    FollowerService,
    FollowersPage,
    InvalidFollow,
    UnknownAuthor,
)

router = APIRouter(prefix="/v1", tags=["followers"])


def _author() -> Any:
    return Path(..., pattern=ID_PATTERN, max_length=FOLLOWER_ID_MAX)


def _follower() -> Any:
    return Path(
        ...,
        pattern=ID_PATTERN,
        max_length=FOLLOWER_ID_MAX,
        description=f"at most {FOLLOWER_ID_MAX} characters, no whitespace or slashes",
    )


@router.put(
    "/authors/{author_id}/followers/{follower_id}",
    dependencies=WRITE,
    response_model=FollowerEdge,
    status_code=200,
    responses={201: {"model": FollowerEdge, "description": "a new follower"}}
    | error_responses(401, 422),
)
async def follow(
    response: Response,
    author_id: str = _author(),
    follower_id: str = _follower(),
    svc: Services = Depends(services),
) -> FollowerEdge:
    """``follower_id`` follows ``author_id`` (201 when new, 200 when it already did)."""
    try:
        edge = await FollowerService(svc.engine).follow(author_id, follower_id)
    except InvalidFollow as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    response.status_code = 201 if edge.created else 200
    return edge


@router.delete(
    "/authors/{author_id}/followers/{follower_id}",
    dependencies=WRITE,
    response_model=FollowerRemoved,
    responses=error_responses(401, 404, 422, e404="the follower does not follow the author"),
)
async def unfollow(
    author_id: str = _author(),
    follower_id: str = _follower(),
    svc: Services = Depends(services),
) -> FollowerRemoved:
    """``follower_id`` no longer follows ``author_id``; a fan-out under way may still reach
    them if its walk has not passed them yet."""
    if not await FollowerService(svc.engine).unfollow(author_id, follower_id):
        raise ApiError(404, f"{follower_id!r} does not follow {author_id!r}")
    return FollowerRemoved(author_id=author_id, follower_id=follower_id)


@router.get(
    "/authors/{author_id}/followers",
    dependencies=READ,
    response_model=FollowersPage,
    responses=error_responses(
        401, 404, 422, e404="no such author (nobody follows them and they have no post)"
    ),
)
async def list_followers(
    author_id: str = _author(),
    cursor: str | None = Query(
        None,
        pattern=ID_PATTERN,
        max_length=FOLLOWER_ID_MAX,
        description="the previous page's `next_cursor`; omit for the first page",
    ),
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    svc: Services = Depends(services),
) -> FollowersPage:
    """An author's followers in id order, a page at a time (keyset: a page is as quick to
    read at the millionth follower as at the first, and none is skipped or repeated)."""
    try:
        return await FollowerService(svc.engine).page(author_id, cursor, limit)
    except UnknownAuthor:
        raise ApiError(404, f"no author {author_id!r}") from None
