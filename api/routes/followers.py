"""The follower graph: who is told when an author publishes a post without a `followers`
list. Any size: the fan-out reads it a page at a time (docs/notifications.md). A migration
imports JSON lines, streamed: `POST /v1/followers/import` or `spool followers-import FILE`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

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
    FollowImport,
    FollowImportResult,
    InvalidFollow,
    UnknownAuthor,
)

router = APIRouter(prefix="/v1", tags=["followers"])
# JSON lines go by several names; each is read the same way.
IMPORT_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
# The body's media type is a sequence of JSON texts, so its schema is one line's (the item
# schema OpenAPI 3.2 names for sequential media types).
IMPORT_LINE_SCHEMA = {
    "type": "object",
    "required": ["author_id", "follower_id"],
    "additionalProperties": False,
    "properties": {
        name: {
            "type": "string",
            "minLength": 1,
            "maxLength": FOLLOWER_ID_MAX,
            "pattern": ID_PATTERN,
        }
        for name in ("author_id", "follower_id")
    },
}
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "JSON lines, one follow a line; the schema is a line's",
        "content": {IMPORT_TYPES[0]: {"schema": IMPORT_LINE_SCHEMA}},
    }
}


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


@router.post(
    "/followers/import",
    dependencies=WRITE,
    response_model=FollowImportResult,
    openapi_extra=IMPORT_BODY,
    responses=error_responses(
        401,
        413,
        415,
        422,
        e422="a line is not a follow; the lines before it are stored, and the message says "
        "how many",
    ),
)
async def import_followers(
    request: Request, svc: Services = Depends(services)
) -> FollowImportResult:
    """Store the follows of a body of JSON lines (a migration), as it streams in: any size up
    to `SPOOL_API_MAX_IMPORT_BYTES`, one chunk in memory. Existing follows are skipped, so an
    import cut off half-way is finished by sending it again. A bad line is refused naming its
    number and field, after the lines before it are stored."""
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given not in IMPORT_TYPES:
        raise ApiError(
            415,
            f"send the follows as JSON lines ({', '.join(IMPORT_TYPES)}), "
            f"not {given or 'a body without a Content-Type'}",
        )
    follows = FollowImport(svc.engine)
    try:
        async for data in request.stream():
            await follows.feed(data)
        return await follows.finish()
    except InvalidFollow as exc:
        raise ApiError(
            422,
            f"{exc} (the {follows.stored} follows before it are stored; fix the line and send "
            "the lines from it again)",
            field=exc.field,
        ) from None
