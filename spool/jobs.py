"""Starting a blog job: the one durable write, duplicates absorbed at the door
(docs/ARCHITECTURE.md, rule 6). The id policy, shared by every pipeline, is in
spool/service/jobs.py."""

from __future__ import annotations

from temporalio.client import Client

from spool.config import Settings
from spool.models import Post
from spool.service import jobs
from spool.service.views import StartedJob

__all__ = ["StartedJob", "start_blog_job"]


async def start_blog_job(client: Client, settings: Settings, post: Post) -> StartedJob:
    """Validate at the door (raises InvalidPostError naming the field), then start once."""
    return await jobs.start_blog(client, settings, post)
