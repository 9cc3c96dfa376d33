"""Authors: how many posts each has published."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from api.deps import READ, Services, services
from api.errors import error_responses
from api.routes.posts import ID_PATTERN
from spool.service.views import AuthorView

router = APIRouter(prefix="/v1", tags=["posts"])


@router.get(
    "/authors/{author_id}",
    dependencies=READ,
    response_model=AuthorView,
    responses=error_responses(401, 422),
)
async def read_author(
    author_id: str = Path(..., pattern=ID_PATTERN), svc: Services = Depends(services)
) -> AuthorView:
    """An author's number of published posts (each post counted once, whatever its edits)."""
    return await svc.posts.author(author_id)
