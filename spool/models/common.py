"""Shapes shared by every pipeline: step progress and job states."""


from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "JOB_CANCELLED",
    "JOB_FAILED",
    "JOB_PROCESSING",
    "JOB_READY",
    "JOB_READY_WITH_ERRORS",
    "STEP_DONE",
    "STEP_FAILED",
    "STEP_PENDING",
    "STEP_RETRYING",
    "STEP_RUNNING",
    "STEP_SKIPPED",
    "STEP_CANCELLED",
    "FINAL_JOB_STATES",
    "INVALID_POST",
    "INVALID_VIDEO",
    "PublishEventInput",
    "StepState",
]

STEP_PENDING = "pending"
STEP_RUNNING = "running"
STEP_RETRYING = "retrying"
STEP_DONE = "done"
STEP_FAILED = "failed"
STEP_SKIPPED = "skipped"
STEP_CANCELLED = "cancelled"

JOB_PROCESSING = "processing"
JOB_READY = "ready"
JOB_READY_WITH_ERRORS = "ready_with_errors"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
FINAL_JOB_STATES = frozenset({JOB_READY, JOB_READY_WITH_ERRORS, JOB_FAILED, JOB_CANCELLED})

# ApplicationError types for bad input: no retry can fix them (raised non-retryable).
INVALID_POST = "InvalidPost"
INVALID_VIDEO = "InvalidVideo"


@dataclass
class StepState:
    """What one step of a job is doing.

    The workflow knows pending/running/done/failed; ``attempt`` and ``last_error`` of a step
    that is retrying come from Temporal's own record of the pending activity and are merged
    in by :mod:`spool.status`, so retries cost no extra history events.
    """

    name: str
    state: str = STEP_PENDING
    attempt: int = 0
    last_error: str | None = None
    percent: float | None = None
    detail: str | None = None


@dataclass
class PublishEventInput:
    """An event announced to people and webhook endpoints once (see spool.notify)."""

    event_id: str  # business id, e.g. "captions-available:{video_id}"
    event_type: str  # e.g. "video.captions_available"
    payload: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    recipients: list[str] = field(default_factory=list)  # people, besides webhook endpoints
