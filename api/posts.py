"""Blog endpoints: publish (idempotent by post id + version), read, search, author counts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.app import READ, WRITE, Services, services
from api.errors import ApiError
from spool.db.blog import author_post_count, get_post
from spool.jobs import start_blog_job
from spool.models import InvalidPostError, Post, blog_workflow_id

router = APIRouter(prefix="/v1", tags=["posts"])

ID_PATTERN = r"^[^\s/\\]{1,200}$"


class PostIn(BaseModel):
    """A post to publish. Unknown fields and wrong types are refused (422 naming the field)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    post_id: str = Field(..., min_length=1, max_length=200, pattern=ID_PATTERN)
    author_id: str = Field(..., min_length=1, max_length=200, pattern=ID_PATTERN)
    title: str = Field(..., min_length=1)
    body: str = Field(..., min_length=1)
    version: int = Field(1, ge=1, le=2**62)
    tags: list[str] = Field(default_factory=list, max_length=100)
    published_at: str | None = Field(None, description="ISO 8601 date-time")
    followers: list[str] | None = Field(None, max_length=10_000)


class PostAccepted(BaseModel):
    job_id: str
    post_id: str
    version: int
    status_url: str


def require_json(request: Request) -> None:
    """A post is JSON: anything else is 415 before the body is parsed."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/")
                                            and ctype.endswith("+json")):
        raise ApiError(415, "send the post as JSON (Content-Type: application/json)")


@router.post("/posts", status_code=202, dependencies=[*WRITE, Depends(require_json)],
             response_model=PostAccepted,
             responses={415: {"description": "the body is not JSON"}})
async def publish_post(post_in: PostIn, svc: Services = Depends(services)) -> JSONResponse:
    """Start publishing; repeating the same post id + version returns the same job."""
    post = Post(**post_in.model_dump())
    try:
        started = await start_blog_job(svc.client, svc.settings, post)
    except InvalidPostError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    body = {"job_id": started.job_id, "post_id": post.post_id, "version": post.version,
            "status_url": f"/v1/posts/{post.post_id}"}
    return JSONResponse(body, status_code=202)


@router.get("/posts/search", dependencies=READ)
async def search_posts(q: str = Query(..., max_length=1000),
                       limit: int = Query(20, ge=1, le=100),
                       svc: Services = Depends(services)) -> dict[str, Any]:
    """Posts matching any word of q, best first (title matches count double)."""
    def run() -> list[dict[str, Any]]:
        results = []
        for post_id in svc.index.search(q, limit):
            doc = svc.index.get(post_id)
            if doc is not None:
                results.append({"post_id": doc.post_id, "title": doc.title,
                                "author_id": doc.author_id, "version": doc.version,
                                "tags": doc.tags, "url": f"/v1/posts/{doc.post_id}"})
        return results

    try:
        results = await asyncio.to_thread(run)
    except Exception as exc:  # noqa: BLE001 - index down: say so, don't 500
        raise ApiError(503, f"search index unavailable: {type(exc).__name__}") from None
    return {"query": q, "results": results}


@router.get("/posts/{post_id}", dependencies=READ)
async def read_post(post_id: str = Path(..., pattern=ID_PATTERN),
                    svc: Services = Depends(services)) -> dict[str, Any]:
    """A published post: its record and, once indexed, its text."""
    row = await asyncio.to_thread(get_post, svc.engine, post_id)
    try:
        doc = await asyncio.to_thread(svc.index.get, post_id)
    except Exception:  # noqa: BLE001 - the record alone is still an answer
        doc = None
    if row is None and doc is None:
        raise ApiError(404, f"no published post {post_id!r}")
    out: dict[str, Any] = {"post_id": post_id, "indexed": doc is not None}
    if row is not None:
        out.update({k: v for k, v in row.items() if k in (
            "author_id", "version", "title", "tags", "published_at")})
    if doc is not None:
        out.update({"author_id": doc.author_id, "title": doc.title, "body": doc.body,
                    "tags": doc.tags, "published_at": doc.published_at})
        out["version"] = max(int(out.get("version") or 0), doc.version)
    out["job_id"] = blog_workflow_id(post_id, int(out.get("version") or 1))
    for key, value in list(out.items()):
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
    return out


@router.get("/authors/{author_id}", dependencies=READ)
async def read_author(author_id: str = Path(..., pattern=ID_PATTERN),
                      svc: Services = Depends(services)) -> dict[str, Any]:
    """An author's number of published posts (each post counted once, whatever its edits)."""
    count = await asyncio.to_thread(author_post_count, svc.engine, author_id)
    return {"author_id": author_id, "post_count": count}
