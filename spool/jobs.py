"""Starting jobs: the one durable write, duplicates absorbed at the door.

(docs/ARCHITECTURE.md, rule 6)
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from spool.config import Settings
from spool.models import BlogPublishInput, Post, blog_workflow_id, validate_post


@dataclass
class StartedJob:
    job_id: str
    run_id: str | None  # None when the job had already finished before this request


async def start_workflow_once(client: Client, workflow: str, arg: object, *, job_id: str,
                              task_queue: str) -> StartedJob:
    """Start a workflow whose id is derived from the business id; a repeat returns the job.

    A running duplicate is absorbed by the USE_EXISTING conflict policy; a finished one by
    REJECT_DUPLICATE, so a publish that already completed is never run a second time.
    """
    try:
        handle = await client.start_workflow(
            workflow, arg, id=job_id, task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        return StartedJob(job_id=job_id, run_id=None)
    return StartedJob(job_id=job_id, run_id=handle.result_run_id)


async def start_blog_job(client: Client, settings: Settings, post: Post) -> StartedJob:
    """Validate at the door (raises InvalidPostError naming the field), then start once."""
    validate_post(post, settings.max_post_body_chars, settings.max_post_title_chars)
    inp = BlogPublishInput(post=post, index_retry_seconds=settings.index_retry_seconds)
    return await start_workflow_once(
        client, "BlogPublishWorkflow", inp,
        job_id=blog_workflow_id(post.post_id, post.version), task_queue=settings.queue_pipeline,
    )
