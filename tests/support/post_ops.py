"""Operations sent straight to a post's workflow, as update-with-start, with the test's own
bounds (a short idle time, so a run completes within the test)."""

from __future__ import annotations

import uuid

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from spool.config import Settings
from spool.models import OpResult, PostEntityInput, PostOp, PostOpKind, post_entity_id
from workflows.posts import PostWorkflow


async def entity_update(
    client, settings: Settings, kind: PostOpKind, post_id: str, *, idle_seconds: int, **fields
) -> OpResult:
    op = PostOp(kind=kind, post_id=post_id, request_id=uuid.uuid4().hex, **fields)
    start = WithStartWorkflowOperation(
        PostWorkflow.run,
        PostEntityInput(post_id=post_id, idle_seconds=idle_seconds),
        id=post_entity_id(post_id),
        task_queue=settings.queue_pipeline,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return await client.execute_update_with_start_workflow(
        PostWorkflow.apply, op, start_workflow_operation=start
    )
