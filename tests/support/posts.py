"""Helpers of the post lifecycle tests: a post, the service, who was notified."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from activities.blog import post_published_event_id
from spool.config import Settings
from spool.db import get_engine
from spool.db.notifications import notifications
from spool.models import Post
from spool.search import open_index
from spool.service.posts import PostService

FOLLOWERS = ["ana", "bo", "cy"]


def make_post(**overrides) -> Post:
    uid = uuid.uuid4().hex[:8]
    fields = dict(
        post_id=f"p-{uid}",
        author_id=f"author-{uid}",
        title="Durable pipelines on Temporal",
        body="Write once, then index, count and notify independently.",
        tags=["temporal"],
        version=1,
        followers=list(FOLLOWERS),
    )
    fields.update(overrides)
    return Post(**fields)


def service_for(client, settings: Settings) -> PostService:
    return PostService(client, settings, get_engine(settings), open_index(settings))


def notified(settings: Settings, post_id: str) -> list[str]:
    """Who was told of the post's publish (the ledger's rows), sorted."""
    with get_engine(settings).connect() as conn:
        rows = conn.execute(
            sa.select(notifications.c.recipient).where(
                notifications.c.event_id == post_published_event_id(post_id)
            )
        ).scalars()
        return sorted(rows)
