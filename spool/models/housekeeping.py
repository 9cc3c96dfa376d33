"""Recurring housekeeping run by Temporal Schedules (spool/schedules.py): its inputs and
results. No I/O here: workflow code imports this module inside the sandbox."""

from dataclasses import dataclass

from spool.models import defaults

__all__ = ["SweepInput", "SweepResult", "UploadSweepInput", "UploadSweepResult"]


@dataclass
class SweepInput:
    # Writes begun this long ago and never finished are dropped.
    older_than_seconds: float
    queue_pipeline: str = defaults.QUEUE_PIPELINE


@dataclass
class SweepResult:
    swept: int
    store: str = ""


@dataclass
class UploadSweepInput:
    # The queue of the pipeline worker that sweeps (its settings say which database and store).
    queue_pipeline: str = defaults.QUEUE_PIPELINE


@dataclass
class UploadSweepResult:
    # Resumable uploads ended because they were past their expiry.
    ended: int
