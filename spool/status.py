"""A job's status as a person wants it: the workflow's own view, plus what Temporal knows.

The workflow's ``status`` query says which steps are pending, running, done or failed. Which
attempt a running step is on, the error that made it retry, and the percent its heartbeat last
reported are already recorded by the Temporal server for every pending activity; this module
merges them in by activity id (= step name), so retries and progress cost no history events.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from spool.models import JobState, StepStatus

_CLOSED_STATES = {
    WorkflowExecutionStatus.CANCELED: JobState.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: JobState.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: JobState.FAILED,
    WorkflowExecutionStatus.FAILED: JobState.FAILED,
}


class JobNotFound(LookupError):
    pass


async def job_status(client: Client, job_id: str) -> dict[str, Any]:
    """The job's state and steps as a JSON-ready dict; raises JobNotFound for unknown ids."""
    handle = client.get_workflow_handle(job_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if "not found" in str(exc).lower():
            raise JobNotFound(job_id) from None
        raise
    status: dict[str, Any] = {}
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        status = dict(await handle.result())
    else:
        try:
            # A closed run is answered by replaying it on a worker; don't wait long for one.
            timeout = 10 if desc.status == WorkflowExecutionStatus.RUNNING else 3
            status = dict(await handle.query("status", rpc_timeout=timedelta(seconds=timeout)))
        except Exception:  # noqa: BLE001 - no worker to answer: report what the server knows
            status = {"job_id": job_id, "steps": []}
        if desc.status == WorkflowExecutionStatus.RUNNING:
            pending = list(desc.raw_description.pending_activities)
            for child in desc.raw_description.pending_children:
                pending += await _child_pending_activities(client, child.workflow_id)
            await _merge_pending(client, status.get("steps", []), pending)
        else:
            status["state"] = _CLOSED_STATES.get(desc.status, JobState.FAILED)
            if desc.status == WorkflowExecutionStatus.FAILED:
                status["error"] = await _failure_message(handle) or status.get("error")
    status["job_id"] = job_id
    status["workflow_type"] = desc.workflow_type
    status["workflow_status"] = desc.status.name if desc.status else None
    status["run_id"] = desc.run_id
    return status


async def _child_pending_activities(client: Client, workflow_id: str) -> list:
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return []
    return list(desc.raw_description.pending_activities)


async def _merge_pending(client: Client, steps: list[dict], pending: list) -> None:
    by_name = {step["name"]: step for step in steps}
    for activity in pending:
        step = by_name.get(activity.activity_id)
        if step is None or step.get("state") in (StepStatus.DONE, StepStatus.FAILED):
            continue
        step["attempt"] = activity.attempt
        if activity.attempt > 1:
            step["state"] = StepStatus.RETRYING
            if activity.HasField("last_failure"):
                step["last_error"] = activity.last_failure.message
        elif activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
            step["state"] = StepStatus.RUNNING
        if activity.HasField("heartbeat_details") and activity.heartbeat_details.payloads:
            percent = _percent(await client.data_converter.decode(
                activity.heartbeat_details.payloads))
            if percent is not None:
                step["percent"] = percent


def _percent(details: list[Any]) -> float | None:
    last = details[-1] if details else None
    if isinstance(last, dict) and isinstance(last.get("percent"), int | float):
        return float(last["percent"])
    return None


async def _failure_message(handle) -> str | None:
    try:
        await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause
        return str(cause) if cause is not None else str(err)
    except Exception as err:  # noqa: BLE001
        return str(err)
    return None
