"""Operations sent straight to a post's workflow, as update-with-start, with the test's own
bounds (a short idle time, so a run completes within the test)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

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


def entity_start(settings: Settings, post_id: str) -> WithStartWorkflowOperation:
    return WithStartWorkflowOperation(
        PostWorkflow.run,
        PostEntityInput(post_id=post_id),
        id=post_entity_id(post_id),
        task_queue=settings.queue_pipeline,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def entity_signal(client, settings: Settings, op: PostOp) -> None:
    """The operation as the service sends it when no worker acknowledged its Update."""
    await client.start_workflow(
        PostWorkflow.run,
        PostEntityInput(post_id=op.post_id),
        id=post_entity_id(op.post_id),
        task_queue=settings.queue_pipeline,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="apply",
        start_signal_args=[op],
    )


async def update_admitted(client, post_id: str, update_id: str) -> bool:
    """Whether the server holds the Update (admitted, whether or not a worker took it)."""
    request = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=post_entity_id(post_id)),
            update_id=update_id,
        ),
        identity=client.identity,
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )
    try:
        await client.workflow_service.poll_workflow_execution_update(
            request, timeout=timedelta(seconds=2)
        )
    except RPCError:
        return False
    return True
