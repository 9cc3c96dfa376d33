"""Worker interceptors that record Spool's metrics: step durations and finished jobs.

worker.py gives them to every worker it builds (``observability.worker_interceptors``), so
the activities and workflows themselves stay as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import CancelledError, FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from spool.observability.metrics import JOBS_HELP, JOBS_METRIC, STEP_SECONDS

log = logging.getLogger("spool.observability")

# Registered workflow names (rule 7: they never change) and the job kind they run.
JOB_KINDS = {
    "BlogPublishWorkflow": "blog",
    "VideoPipelineWorkflow": "video",
    "CaptionsWorkflow": "captions",
}


class SpoolMetricsInterceptor(Interceptor):
    """Times every activity attempt and counts every workflow run that ends."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepTimer(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _JobOutcomeCounter


class _StepTimer(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        started = time.monotonic()
        outcome = "error"
        try:
            result = await self.next.execute_activity(input)
            outcome = "ok"
            return result
        except (asyncio.CancelledError, CancelledError):
            outcome = "cancelled"
            raise
        finally:
            _observe_step(outcome, time.monotonic() - started)


def step_label(activity_id: str) -> str:
    """The step an activity id names (docs/ARCHITECTURE.md, step table), as a metric label
    with a bounded set of values: a chunk's index is dropped (``encode-00042`` -> ``encode``:
    a long video has hundreds), a rendition's or record's name kept (``package-720p``)."""
    base, dash, suffix = activity_id.rpartition("-")
    return base if dash and suffix.isdigit() else activity_id


def _observe_step(outcome: str, seconds: float) -> None:
    """Record one attempt; a metrics failure is logged, never raised: it must not change
    what the step itself did."""
    try:
        info = activity.info()
        STEP_SECONDS.labels(
            step=step_label(info.activity_id),
            activity_type=info.activity_type,
            task_queue=info.task_queue,
            outcome=outcome,
        ).observe(seconds)
    except Exception:  # noqa: BLE001
        log.exception("could not record a step duration")


class _JobOutcomeCounter(WorkflowInboundInterceptor):
    """Counts a workflow run once when it ends for good.

    Runs inside the workflow sandbox: only workflow APIs, no clock, no I/O. The workflow
    metric meter records nothing while a history is being replayed, so a run evicted from
    the cache and replayed is not counted twice.
    """

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            result = await self.next.execute_workflow(input)
        except asyncio.CancelledError:
            _count_job("cancelled")
            raise
        except FailureError:
            # Fails the run. Any other exception only fails this workflow task, which the
            # server retries: not a final state.
            _count_job("failed")
            raise
        _count_job(final_state(result))
        return result


def final_state(result: Any) -> str:
    """The state a workflow's result reports (every Spool result has ``state``)."""
    state = getattr(result, "state", None)
    if state is None:
        return "completed"
    return str(getattr(state, "value", state))


def _count_job(state: str) -> None:
    """Count the run; a metrics failure is logged, never raised: raising here would fail the
    workflow task, and the server would retry it forever."""
    try:
        kind_of = workflow.info().workflow_type
        counter = workflow.metric_meter().create_counter(JOBS_METRIC, JOBS_HELP)
        counter.add(1, {"kind": JOB_KINDS.get(kind_of, kind_of), "state": state})
    except Exception:  # noqa: BLE001
        workflow.logger.exception("could not count a finished job")
