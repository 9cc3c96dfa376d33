"""Operations on a post: handed to the post's own workflow (``post-{post_id}``), which applies
them in order (workflows/posts.py).

Each is an Update sent with update-with-start, so the first operation on a post creates its
workflow and the validator refuses a bad one before it enters history. An Update needs a
worker to be acknowledged; when none answers within ACK_SECONDS the same request is sent as a
signal-with-start, which the server keeps durably until a worker comes, so an operation is
still acknowledged at once (docs/posts.md). The request id makes the two one operation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from spool.config import Settings
from spool.db.blog import DELETED, get_post
from spool.models import (
    INVALID_POST,
    OpResult,
    PostEntityInput,
    PostEntityState,
    PostOp,
    PostOpKind,
    PostState,
    blog_workflow_id,
    post_entity_id,
)

POST_WORKFLOW = "PostWorkflow"
APPLY = "apply"
# How long an operation waits for a worker to acknowledge it before it is sent durably
# instead (the answer is then "accepted", its checks made when a worker runs it).
ACK_SECONDS = 5.0
# A queue seen polled is not asked again for this long (a request each would cost a round
# trip); one not polled is asked each time, so a worker that has just come is used at once.
POLLED_SECONDS = 5.0
_POLLED: dict[str, float] = {}
# The refusals' types (workflows/post_rules.py) as the errors the API and the CLI answer.
POST_NOT_FOUND = "PostNotFound"
POST_CONFLICT = "PostConflict"


class OutcomeUnknown(Exception):
    """The operation was sent, and Temporal stopped answering before it was known to be
    kept: it may still be applied (once), or not. Repeating it is absorbed."""


class PostRefused(Exception):
    """The post's workflow refused the operation; nothing changed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.kind == POST_NOT_FOUND

    @property
    def conflict(self) -> bool:
        return self.kind == POST_CONFLICT


@dataclass(frozen=True)
class Applied:
    """An operation acknowledged: by the post's workflow (``result``), or, with no worker to
    answer in time, durably handed over (``result`` None)."""

    job_id: str
    op: PostOp
    result: OpResult | None


def new_op(kind: PostOpKind, post_id: str, **fields) -> PostOp:
    return PostOp(kind=kind, post_id=post_id, request_id=uuid.uuid4().hex, **fields)


async def apply_op(
    client: Client,
    settings: Settings,
    engine: Engine,
    op: PostOp,
    *,
    ack_seconds: float = ACK_SECONDS,
) -> Applied:
    """Apply one operation; raises PostRefused (nothing changed) or the server's error."""
    if op.kind != PostOpKind.PUBLISH:
        await require_known(client, engine, op.post_id)
    start = WithStartWorkflowOperation(
        POST_WORKFLOW,
        _entity_input(settings, op.post_id),
        id=post_entity_id(op.post_id),
        task_queue=settings.queue_pipeline,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    sent = False
    if await worker_polls(client, settings.queue_pipeline):
        sent = True
        try:
            result = await asyncio.wait_for(_update(client, op, start), ack_seconds)
        except (TimeoutError, RPCTimeoutOrCancelledError, RPCError):
            # Not acknowledged: no worker in time, or the task carrying it was lost (a worker
            # killed while it held it). The SDK answers the wait cut short with its own
            # RPCTimeoutOrCancelledError, which wait_for passes on instead of TimeoutError.
            # The server may still deliver that Update later; the signal below is the same
            # request (its request id), so it is applied once.
            pass
        else:
            return Applied(job_id=result.job_id, op=op, result=result)
    try:
        await _signal(client, settings, op)
    except RPCError as exc:
        if sent:
            raise OutcomeUnknown(
                f"Temporal stopped answering after the operation was sent ({exc.message}): "
                "it may still be applied, once; repeating it is absorbed"
            ) from None
        raise
    return Applied(job_id=_expected_job_id(op), op=op, result=None)


async def worker_polls(client: Client, queue: str) -> bool:
    """Whether a worker has lately polled the queue's workflow tasks: when none has, an
    Update would only wait for one, so the operation goes straight to the durable signal."""
    now = time.monotonic()
    seen = _POLLED.get(queue)
    if seen is not None and now - seen < POLLED_SECONDS:
        return True
    try:
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
    except RPCError:
        return True  # not known: try the Update, within its time
    if answer.pollers:
        _POLLED[queue] = now
    return bool(answer.pollers)


async def _update(client: Client, op: PostOp, start: WithStartWorkflowOperation) -> OpResult:
    try:
        handle = await client.start_update_with_start_workflow(
            APPLY,
            op,
            start_workflow_operation=start,
            wait_for_stage=WorkflowUpdateStage.COMPLETED,
            id=op.request_id,
            result_type=OpResult,
        )
        return await handle.result()
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            raise PostRefused(cause.type or INVALID_POST, cause.message) from None
        raise


async def _signal(client: Client, settings: Settings, op: PostOp) -> None:
    await client.start_workflow(
        POST_WORKFLOW,
        _entity_input(settings, op.post_id),
        id=post_entity_id(op.post_id),
        task_queue=settings.queue_pipeline,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal=APPLY,
        start_signal_args=[op],
    )


def _entity_input(settings: Settings, post_id: str) -> PostEntityInput:
    return PostEntityInput(post_id=post_id, index_retry_seconds=settings.index_retry_seconds)


def _expected_job_id(op: PostOp) -> str:
    """The job an operation not yet acknowledged will be: a publish's own job (unless the
    same version is published again while its first job runs), else the post's workflow."""
    if op.kind == PostOpKind.PUBLISH and op.post is not None and op.publish_at is None:
        return blog_workflow_id(op.post_id, op.post.version)
    return post_entity_id(op.post_id)


async def require_known(client: Client, engine: Engine, post_id: str) -> None:
    """PostRefused unless the post exists to operate on: recorded and not deleted, or its
    workflow runs (an operation just accepted, not yet written)."""
    row = await asyncio.to_thread(get_post, engine, post_id)
    if row is not None and row["state"] != DELETED:
        return
    if not await entity_running(client, post_id):
        raise PostRefused(POST_NOT_FOUND, f"no post {post_id!r}")


async def entity_running(client: Client, post_id: str) -> bool:
    try:
        desc = await client.get_workflow_handle(post_entity_id(post_id)).describe()
    except RPCError:
        return False
    return desc.status == WorkflowExecutionStatus.RUNNING


async def entity_state(client: Client, post_id: str) -> PostState | None:
    """The state the post's running workflow holds (None: no run, or no worker to say)."""
    try:
        state = await asyncio.wait_for(
            client.get_workflow_handle(post_entity_id(post_id)).query(
                "state", result_type=PostEntityState
            ),
            2.0,
        )
    except (RPCError, TimeoutError):
        return None
    return state.state


async def deleted_in_history(client: Client, post_id: str) -> bool:
    """Whether the post's running workflow holds a delete not followed by a publish (only a
    publish brings a deleted post back), read from its history, the durable log, so that it
    is answered without a worker."""
    handle = client.get_workflow_handle(post_entity_id(post_id))
    deleted = False
    try:
        async for event in handle.fetch_history_events():
            payloads = _operation_payloads(event)
            if payloads:
                (op,) = client.data_converter.payload_converter.from_payloads(payloads, [PostOp])
                if op.kind in (PostOpKind.DELETE, PostOpKind.PUBLISH):
                    deleted = op.kind == PostOpKind.DELETE
    except RPCError:
        return False
    return deleted


def _operation_payloads(event) -> list | None:
    if event.HasField("workflow_execution_signaled_event_attributes"):
        signal = event.workflow_execution_signaled_event_attributes
        return list(signal.input.payloads) if signal.signal_name == APPLY else None
    if event.HasField("workflow_execution_update_accepted_event_attributes"):
        request = event.workflow_execution_update_accepted_event_attributes.accepted_request
        return list(request.input.args.payloads) if request.input.name == APPLY else None
    return None
