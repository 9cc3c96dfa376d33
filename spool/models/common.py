"""Shapes shared by every pipeline: step progress and job states."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "FINAL_JOB_STATES",
    "INVALID_POST",
    "INVALID_VIDEO",
    "JobState",
    "PublishEventInput",
    "StepState",
    "StepStatus",
]


class StepStatus(StrEnum):
    """What one step is doing. The values are the API's ``steps[].state`` and appear in saved
    histories: never change one."""

    PENDING = "pending"
    RUNNING = "running"
    # Never set by a workflow: spool/service/jobs.py reads it from the server's pending
    # activity.
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    """A job's state (docs/ARCHITECTURE.md rule 5); the values are the API's ``state``."""

    PROCESSING = "processing"
    READY = "ready"
    READY_WITH_ERRORS = "ready_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_JOB_STATES = frozenset(
    {JobState.READY, JobState.READY_WITH_ERRORS, JobState.FAILED, JobState.CANCELLED}
)

# ApplicationError types for bad input: no retry can fix them (raised non-retryable).
INVALID_POST = "InvalidPost"
INVALID_VIDEO = "InvalidVideo"


@dataclass
class StepState:
    """What one step of a job is doing.

    The workflow knows every state but ``retrying``; ``attempt`` and ``last_error`` of a step
    that is retrying come from Temporal's own record of the pending activity and are merged
    in by ``spool/service/jobs.py``, so retries cost no extra history events.
    """

    name: str
    state: StepStatus = StepStatus.PENDING
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
