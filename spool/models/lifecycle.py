"""A video's end: the deletion job's inputs, results and status (workflows/deletion.py).

No I/O here: workflow code imports this module inside the sandbox.
"""

from dataclasses import dataclass

from spool.models import defaults
from spool.models.common import JobState, StepState

__all__ = [
    "DELETE_NOW_SIGNAL",
    "DeleteObjectsInput",
    "DeleteObjectsResult",
    "DeleteRecordsInput",
    "MarkDeletingInput",
    "StopJobInput",
    "StopJobResult",
    "VideoDeletionInput",
    "VideoDeletionStatus",
    "video_deletion_workflow_id",
    "video_id_of_deletion",
]

# The signal that ends a deletion's wait for its retention time: a delete asked for now.
DELETE_NOW_SIGNAL = "delete_now"
_DELETION_PREFIX = "delete-video-"


def video_deletion_workflow_id(video_id: str) -> str:
    """One deletion per video, whoever asks for it (a person, its retention time)."""
    return f"{_DELETION_PREFIX}{video_id}"


def video_id_of_deletion(job_id: str) -> str | None:
    video_id = job_id.removeprefix(_DELETION_PREFIX)
    return video_id if video_id != job_id and video_id else None


@dataclass
class VideoDeletionInput:
    video_id: str
    # Epoch seconds: the video's retention time, until which the job waits (a durable timer)
    # unless a delete is asked for meanwhile; None = delete now.
    delete_at: float | None = None
    # Why: "request" (DELETE /v1/videos/{id}, the CLI) or "retention" (delete_after).
    reason: str = "request"
    queue_pipeline: str = defaults.QUEUE_PIPELINE
    # A running job is asked to cancel and waited for this long, then terminated.
    stop_wait_seconds: float = 3600.0
    # After stopping a running job, the objects and rows are looked for again this long after
    # the first pass: what a worker cut off from the server may still have written.
    recheck_seconds: float = 300.0


@dataclass
class MarkDeletingInput:
    video_id: str
    job_id: str
    reason: str = "request"


@dataclass
class StopJobInput:
    video_id: str
    # Epoch seconds past which a job that has not stopped on its cancel is terminated.
    terminate_after: float


@dataclass
class StopJobResult:
    # "none" (Temporal knows no job), "ended" (it had ended), "cancelled" (it stopped on its
    # cancel) or "terminated" (it did not stop in time).
    outcome: str
    owner_id: str | None = None
    callback_url: str | None = None


@dataclass
class DeleteObjectsInput:
    video_id: str


@dataclass
class DeleteObjectsResult:
    deleted: int
    aborted_uploads: int = 0


@dataclass
class DeleteRecordsInput:
    video_id: str


@dataclass
class VideoDeletionStatus:
    job_id: str
    video_id: str
    # processing while it runs, ready once every object and row is gone.
    state: JobState
    steps: list[StepState]
    reason: str = "request"
    # Epoch seconds the job waits for (retention), while it waits.
    delete_at: float | None = None
    objects_deleted: int = 0
    error: str | None = None
