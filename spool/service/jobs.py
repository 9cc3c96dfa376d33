"""Starting, cancelling and reading jobs: the one way the API and the command line do it.

Every job, whatever its pipeline, is started the same way (docs/ARCHITECTURE.md, rule 6): its
workflow id comes from the business id (``post-{id}-v{version}``, ``video-{id}``), a start
while that job runs returns the running job (conflict policy USE_EXISTING), and a start after
it finished returns the finished one without running it again (reuse policy
REJECT_DUPLICATE). Whether a job exists is decided by the server's NOT_FOUND status code,
never by the words of an error.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from spool.config import Settings
from spool.models import (
    BlogPublishInput,
    BlogPublishStatus,
    JobState,
    Post,
    StepStatus,
    VideoDeletionStatus,
    VideoPipelineInput,
    VideoStatus,
    blog_workflow_id,
    run_text,
    validate_post,
    video_workflow_id,
)
from spool.models.failures import failure_message
from spool.models.search_attributes import (
    SPOOL_KIND,
    SPOOL_STATUS,
    SPOOL_SUMMARY,
    STATUS_MEMO,
)
from spool.service.views import CancelRequested, JobView, StartedJob, StepView

BLOG_WORKFLOW = "BlogPublishWorkflow"
VIDEO_WORKFLOW = "VideoPipelineWorkflow"
DELETION_WORKFLOW = "VideoDeletionWorkflow"
# The status each pipeline's workflow answers (its result, and its "status" query).
STATUS_TYPES: dict[str, type] = {
    BLOG_WORKFLOW: BlogPublishStatus,
    VIDEO_WORKFLOW: VideoStatus,
    DELETION_WORKFLOW: VideoDeletionStatus,
}
# A job whose history is this short was started and not yet picked up by any worker: a query
# would only wait for one.
UNSTARTED_HISTORY_LENGTH = 3
RUNNING_QUERY_SECONDS = 10
# A closed run is answered by replaying it on a worker: don't wait long for one.
CLOSED_QUERY_SECONDS = 3

_CLOSED_STATES = {
    WorkflowExecutionStatus.CANCELED: JobState.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: JobState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: JobState.FAILED,
    WorkflowExecutionStatus.FAILED: JobState.FAILED,
}


class JobNotFound(LookupError):
    """No job with this id (the server said NOT_FOUND)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class JobEnded(Exception):
    """The job has already ended, so it cannot be cancelled."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"the job has already ended ({status})")
        self.job_id = job_id
        self.status = status


def is_not_found(exc: RPCError) -> bool:
    return exc.status == RPCStatusCode.NOT_FOUND


# --- start ----------------------------------------------------------------------------------


def processing_attributes(kind: str) -> TypedSearchAttributes:
    """SpoolKind and SpoolStatus as a job starts: the UI filters it from the moment it is
    accepted, and its workflow need not upsert them first (workflows/blog.py)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(SPOOL_KIND, kind),
            SearchAttributePair(SPOOL_STATUS, str(JobState.PROCESSING)),
        ]
    )


def with_summary(
    attributes: TypedSearchAttributes | None, summary: str | None
) -> TypedSearchAttributes | None:
    """The start's search attributes and its summary as ``SpoolSummary``: the UI's list shows
    and filters a search attribute, never the summary itself."""
    if summary is None:
        return attributes
    pairs = list(attributes or TypedSearchAttributes.empty)
    return TypedSearchAttributes([*pairs, SearchAttributePair(SPOOL_SUMMARY, summary)])


async def start_once(
    client: Client,
    workflow: str,
    arg: object,
    *,
    job_id: str,
    task_queue: str,
    search_attributes: TypedSearchAttributes | None = None,
    summary: str | None = None,
    details: str | None = None,
) -> StartedJob:
    """Start a job under the one id policy of every pipeline; a repeat returns the same job.
    ``summary`` and ``details`` are what the Temporal UI shows of the run
    (spool/models/run_text.py)."""
    try:
        handle = await client.start_workflow(
            workflow,
            arg,
            id=job_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=with_summary(search_attributes, summary),
            static_summary=summary,
            static_details=details,
        )
    except WorkflowAlreadyStartedError:
        return StartedJob(job_id=job_id, run_id=None)
    return StartedJob(job_id=job_id, run_id=handle.result_run_id)


async def start_blog(client: Client, settings: Settings, post: Post) -> StartedJob:
    """Validate at the door (raises InvalidPostError naming the field), then start once."""
    validate_post(
        post,
        settings.max_post_body_chars,
        settings.max_post_title_chars,
        max_followers=settings.max_post_followers,
    )
    inp = BlogPublishInput(post=post, index_retry_seconds=settings.index_retry_seconds)
    return await start_once(
        client,
        BLOG_WORKFLOW,
        inp,
        job_id=blog_workflow_id(post.post_id, post.version),
        task_queue=settings.queue_pipeline,
        search_attributes=processing_attributes("blog"),
        summary=run_text.post_summary(post),
        details=run_text.post_details(post),
    )


async def start_video(
    client: Client,
    settings: Settings,
    inp: VideoPipelineInput,
    *,
    file_name: str | None = None,
    size_bytes: int | None = None,
) -> StartedJob:
    """Start a video's job (its source already stored at ``inp.source_key``) once;
    ``file_name`` (the client's, shown only, never used as a path) and ``size_bytes`` are
    for the run's summary."""
    return await start_once(
        client,
        VIDEO_WORKFLOW,
        inp,
        job_id=video_workflow_id(inp.video_id),
        task_queue=settings.queue_pipeline,
        summary=run_text.video_summary(inp, file_name, size_bytes),
        details=run_text.video_details(inp, file_name, size_bytes),
    )


# --- cancel ---------------------------------------------------------------------------------


async def describe(client: Client, job_id: str) -> WorkflowExecutionDescription:
    """What the server knows of the job; raises JobNotFound when it knows no such job."""
    try:
        return await client.get_workflow_handle(job_id).describe()
    except RPCError as exc:
        if is_not_found(exc):
            raise JobNotFound(job_id) from None
        raise


async def cancel(client: Client, job_id: str) -> CancelRequested:
    """Ask a running job to stop; it records and announces the cancel itself.

    Raises JobNotFound for an unknown job and JobEnded for one that has already ended.
    """
    desc = await describe(client, job_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise JobEnded(job_id, desc.status.name.lower() if desc.status else "closed")
    await client.get_workflow_handle(job_id, run_id=desc.run_id).cancel()
    return CancelRequested(job_id=job_id)


# --- status ---------------------------------------------------------------------------------


async def status(client: Client, job_id: str, *, wait_for_worker: bool = True) -> JobView:
    """The job's state and steps; raises JobNotFound for an unknown id.

    The workflow's own status says which steps are pending, running, done or failed: its
    result once completed, else the copy it keeps in its memo (STATUS_MEMO, upserted at the
    end of every workflow task that changed it: what its ``status`` query would answer, read
    from the same describe, so no worker is needed and a dead one costs no wait), else, for a
    run that keeps none (started before the memo, or a pipeline that has none), its ``status``
    query. Which attempt a running step is on, the error that made it retry and the percent
    its heartbeat last reported are the server's record of each pending activity, merged in by
    activity id (= step name), so retries and progress cost no history events
    (docs/ARCHITECTURE.md, decisions).

    A job no worker has picked up yet has no steps to tell: with ``wait_for_worker`` the
    status query waits (up to RUNNING_QUERY_SECONDS) for a worker to answer it, as a command
    line waiting on a job wants; without it the view says "waiting for a worker" at once, as a
    status page polled every second wants.
    """
    desc = await describe(client, job_id)
    result_type = STATUS_TYPES.get(desc.workflow_type)
    handle = client.get_workflow_handle(job_id, run_id=desc.run_id, result_type=result_type)
    view = JobView(
        job_id=job_id,
        state=JobState.PROCESSING,
        workflow_type=desc.workflow_type,
        workflow_status=desc.status.name if desc.status else None,
        run_id=desc.run_id,
    )
    running = desc.status == WorkflowExecutionStatus.RUNNING
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        pipeline = await handle.result()
    else:
        pipeline = await _memo_status(desc, result_type)
    if pipeline is None:
        unstarted = (desc.history_length or 0) <= UNSTARTED_HISTORY_LENGTH
        if not wait_for_worker and running and unstarted:
            view.unavailable = "waiting for a worker"
            return view
        pipeline = await _query_status(handle, result_type, running)
        if pipeline is None:
            view.unavailable = "no worker answered the status query"
    view.pipeline = pipeline
    own = _status_fields(pipeline)
    view.steps = [StepView.model_validate(step) for step in own.get("steps") or []]
    view.state = own.get("state") or JobState.PROCESSING
    view.error = own.get("error")
    if running:
        pending = list(desc.raw_description.pending_activities)
        for child in desc.raw_description.pending_children:
            pending += await _child_pending_activities(client, child.workflow_id)
        await _merge_pending(
            client, view.steps, pending, getattr(pipeline, "step_shares", None) or {}
        )
    elif desc.status != WorkflowExecutionStatus.COMPLETED:
        view.state = (
            _CLOSED_STATES.get(desc.status, JobState.FAILED) if desc.status else JobState.FAILED
        )
        if desc.status == WorkflowExecutionStatus.FAILED:
            view.error = await _failure(handle) or view.error
    return view


async def live_status(client: Client, job_id: str, seconds: float) -> JobView | None:
    """The job's view as a page polled every second wants it: at once, even before a worker
    has picked the job up, within ``seconds``. None when Temporal knows no such job; a view
    saying why when Temporal cannot answer in time."""
    try:
        return await asyncio.wait_for(status(client, job_id, wait_for_worker=False), seconds)
    except JobNotFound:
        return None
    except TimeoutError:
        reason = "Temporal did not answer in time"
    except RPCError as exc:
        reason = f"Temporal: {exc}"
    return JobView(job_id=job_id, state=JobState.PROCESSING, unavailable=reason)


def _status_fields(pipeline: Any) -> dict[str, Any]:
    """The pipeline's status as a mapping (a typed status, or a dict of an unknown type)."""
    if pipeline is None:
        return {}
    if isinstance(pipeline, dict):
        return pipeline
    return {name: getattr(pipeline, name) for name in ("state", "error")} | {
        "steps": [vars(step) for step in getattr(pipeline, "steps", [])]
    }


async def _memo_status(desc: WorkflowExecutionDescription, result_type: type | None) -> Any:
    """The status the run keeps in its memo, or None when it keeps none."""
    try:
        if result_type is None:
            return await desc.memo_value(STATUS_MEMO, None)
        return await desc.memo_value(STATUS_MEMO, None, type_hint=result_type)
    except Exception:  # noqa: BLE001 - a memo this code cannot read: ask the workflow
        return None


async def _query_status(
    handle: WorkflowHandle[Any, Any], result_type: type | None, running: bool
) -> Any:
    seconds = RUNNING_QUERY_SECONDS if running else CLOSED_QUERY_SECONDS
    try:
        return await handle.query(
            "status", result_type=result_type, rpc_timeout=timedelta(seconds=seconds)
        )
    except Exception:  # noqa: BLE001 - no worker to answer: report what the server knows
        return None


async def _child_pending_activities(client: Client, workflow_id: str) -> list[PendingActivityInfo]:
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return []
    return list(desc.raw_description.pending_activities)


async def _merge_pending(
    client: Client,
    steps: list[StepView],
    pending: list[PendingActivityInfo],
    shares: dict[str, dict[str, float]] | None = None,
) -> None:
    """Attempts, retry errors and heartbeat percents onto the steps. An activity that is an
    item of an aggregate step (``encode-00003`` of ``encode``) shows its retries there; a
    step with ``shares`` (``rendition-720p``, made of chunks: activity id -> percentage
    points) adds each running activity's share of its heartbeat percent to its own."""
    by_name = {step.name: step for step in steps}
    percents: dict[str, float] = {}
    for activity in pending:
        percent = None
        if activity.HasField("heartbeat_details") and activity.heartbeat_details.payloads:
            percent = _percent(
                await client.data_converter.decode(activity.heartbeat_details.payloads)
            )
        if percent is not None:
            percents[activity.activity_id] = percent
        step = by_name.get(activity.activity_id)
        item = step is None
        if item:
            step = by_name.get(activity.activity_id.rsplit("-", 1)[0])
        if step is None or step.state in (StepStatus.DONE, StepStatus.FAILED):
            continue
        step.attempt = max(activity.attempt, step.attempt) if item else activity.attempt
        if activity.attempt > 1:
            step.state = StepStatus.RETRYING
            if activity.HasField("last_failure"):
                step.last_error = activity.last_failure.message
        elif (
            activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            and step.state != StepStatus.RETRYING
        ):
            step.state = StepStatus.RUNNING
        if percent is not None and not item:
            step.percent = percent
    for name, parts in (shares or {}).items():
        step = by_name.get(name)
        if step is not None and step.state not in (StepStatus.DONE, StepStatus.FAILED):
            running = sum(
                share * percents.get(activity_id, 0.0) / 100 for activity_id, share in parts.items()
            )
            step.percent = round(min(100.0, (step.percent or 0.0) + running), 1)


def _percent(details: list[Any]) -> float | None:
    last = details[-1] if details else None
    if isinstance(last, dict) and isinstance(last.get("percent"), int | float):
        return float(last["percent"])
    return None


async def _failure(handle: WorkflowHandle[Any, Any]) -> str | None:
    """Why a failed job failed: the innermost cause of its failure chain."""
    try:
        await handle.result()
    except WorkflowFailureError as err:
        return failure_message(err.cause) if err.cause is not None else str(err)
    except Exception as err:  # noqa: BLE001
        return str(err)
    return None
