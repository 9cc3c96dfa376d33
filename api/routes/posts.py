"""Posts: publish (idempotent by post id + version), read, search."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.deps import READ, WRITE, Services, services
from api.errors import ApiError, error_responses
from spool.models import InvalidPostError, Post, defaults
from spool.service import IndexUnavailable
from spool.service.post_ops import OutcomeUnknown, PostRefused
from spool.service.views import PostAccepted, PostJobView, PostView, SearchResults

router = APIRouter(prefix="/v1", tags=["posts"])


def _whitespace_class() -> str:
    """Every character ``str.isspace`` calls whitespace, as a regex class body. Spelled out
    because ``\\s`` means other sets in other engines: ECMA's (the OpenAPI document's),
    Python's and Rust's (pydantic's) differ on U+001C..U+001F and U+0085."""
    spaces = [code for code in range(0x110000) if chr(code).isspace()]
    ranges: list[list[int]] = []
    for code in spaces:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        f"\\u{first:04x}" + (f"-\\u{last:04x}" if last > first else "") for first, last in ranges
    )


# What spool.models.validate_post accepts, stated in the schema: no whitespace (as Python
# sees it) or slashes in ids, and some text that is not whitespace in a title and a body.
_SPACE = _whitespace_class()
ID_PATTERN = rf"^[^{_SPACE}/\\]{{1,200}}$"
TEXT_PATTERN = rf"[^{_SPACE}]"
IdStr = Annotated[str, Field(min_length=1, max_length=200, pattern=ID_PATTERN)]


def _integral(value: object) -> object:
    """JSON Schema counts 2.0 as an integer; so does the API (a string stays refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Version = Annotated[int, Field(ge=1, le=2**62), BeforeValidator(_integral)]


class PostIn(BaseModel):
    """A post to publish. Unknown fields and wrong types are refused (422 naming the field).
    The title's and body's maxLength are the server's settings (SPOOL_MAX_POST_*_CHARS)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    post_id: IdStr
    author_id: IdStr
    title: str = Field(
        ..., min_length=1, max_length=defaults.MAX_POST_TITLE_CHARS, pattern=TEXT_PATTERN
    )
    body: str = Field(
        ..., min_length=1, max_length=defaults.MAX_POST_BODY_CHARS, pattern=TEXT_PATTERN
    )
    version: Version = 1
    tags: list[str] = Field(default_factory=list, max_length=100)
    published_at: str | None = Field(
        None, description="ISO 8601 date-time", json_schema_extra={"format": "date-time"}
    )
    followers: list[IdStr] | None = Field(
        None, max_length=10_000, description="ids to notify; omit for the author's followers"
    )
    publish_at: str | None = Field(
        None,
        description="publish at this time (ISO 8601 with a zone); past or now: at once; at "
        "most a year ahead",
        json_schema_extra={"format": "date-time"},
    )


async def require_json(request: Request) -> None:
    """A post is JSON: anything else is 415 before the body is parsed. Async: no thread hop."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json" and not (
        ctype.startswith("application/") and ctype.endswith("+json")
    ):
        raise ApiError(415, "send the post as JSON (Content-Type: application/json)")


@router.post(
    "/posts",
    status_code=202,
    dependencies=[*WRITE, Depends(require_json)],
    response_model=PostAccepted,
    operation_id="publish_post",
    responses={
        202: {
            "links": {
                "GetPost": {
                    "operationId": "read_post",
                    "parameters": {
                        "post_id": "$response.body#/post_id",
                        "version": "$response.body#/version",
                    },
                },
                "GetPostJob": {
                    "operationId": "post_job",
                    "parameters": {
                        "post_id": "$response.body#/post_id",
                        "version": "$response.body#/version",
                    },
                },
            }
        },
        **error_responses(
            400,
            401,
            409,
            413,
            415,
            422,
            503,
            e409="a newer version of the post is published or scheduled; nothing changed",
            e503="Temporal is unavailable; nothing was started (unless the message says it "
            "may still be applied: then repeat the request, a repeat is absorbed)",
        ),
    },
)
async def publish_post(post_in: PostIn, svc: Services = Depends(services)) -> JSONResponse:
    """Publish now, or at ``publish_at`` (then the state is ``scheduled``); repeating the same
    post id + version returns the same job."""
    fields = post_in.model_dump()
    publish_at = fields.pop("publish_at")
    return await accepted_or_error(
        lambda: svc.posts.publish(Post(**fields), publish_at), "could not start the job"
    )


async def accepted_or_error(
    hand_over: Callable[[], Awaitable[BaseModel]], failing: str
) -> JSONResponse:
    """202 with what a post operation's hand-over answered, or its failure as the API's
    error: the post invalid 422, refused by its workflow as it says, not known to be applied
    or not 503 saying so, Temporal unreachable 503 (``failing``: what could not be done)."""
    try:
        accepted = await hand_over()
    except InvalidPostError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    except PostRefused as exc:
        raise refused(exc) from None
    except OutcomeUnknown as exc:
        raise ApiError(503, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Temporal unreachable or refusing
        raise ApiError(503, f"{failing}: {exc}") from None
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)


def refused(exc: PostRefused) -> ApiError:
    """A refusal of the post's workflow as its answer: nothing changed."""
    if exc.not_found:
        return ApiError(404, exc.message)
    if exc.conflict:
        return ApiError(409, exc.message)
    return ApiError(422, exc.message, field=exc.message.split(":", 1)[0])


@router.get(
    "/posts/search",
    dependencies=READ,
    response_model=SearchResults,
    responses=error_responses(401, 422, 503, e503="the post index is unavailable"),
)
async def search_posts(
    q: str = Query(..., max_length=1000),
    limit: int = Query(20, ge=1, le=100),
    svc: Services = Depends(services),
) -> SearchResults:
    """Posts matching any word of q, best first (title matches count double)."""
    try:
        return await svc.posts.search(q, limit)
    except IndexUnavailable as exc:
        raise ApiError(503, f"search index unavailable: {exc}") from None


@router.get(
    "/posts/{post_id}",
    dependencies=READ,
    response_model=PostView,
    operation_id="read_post",
    responses=error_responses(401, 404, 422, e404="no such post (or version)"),
)
async def read_post(
    post_id: str = Path(..., pattern=ID_PATTERN),
    version: int | None = Query(
        None,
        ge=1,
        le=2**62,
        description="a version just published: answered by its job's state until it is recorded",
    ),
    svc: Services = Depends(services),
) -> PostView:
    """A published post: its record and, once indexed, its text."""
    view = await svc.posts.view(post_id, version)
    if view is None:
        raise ApiError(404, f"no published post {post_id!r}")
    return view


@router.get(
    "/posts/{post_id}/versions/{version}/job",
    dependencies=READ,
    response_model=PostJobView,
    operation_id="post_job",
    responses=error_responses(401, 404, 422, e404="no job publishes this version of the post"),
)
async def post_job(
    post_id: str = Path(..., pattern=ID_PATTERN),
    version: int = Path(..., ge=1, le=2**62),
    svc: Services = Depends(services),
) -> PostJobView:
    """The job publishing one version of a post: its state and each step's (index, count,
    notify), attempts and retry errors included; what `starter.py status` prints."""
    view = await svc.posts.job(post_id, version)
    if view is None:
        raise ApiError(404, f"no job publishes version {version} of post {post_id!r}")
    return view
