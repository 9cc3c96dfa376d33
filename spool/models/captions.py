"""The captions branch's inputs, results and state: what crosses the Temporal boundary for
CaptionsWorkflow (workflows/captions.py).

No I/O here: workflow code imports this module inside the sandbox.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from spool.models import defaults
from spool.models.common import StepState

__all__ = [
    "CaptionsInput",
    "CaptionsResult",
    "CaptionsState",
    "ExtractAudioInput",
    "ExtractAudioResult",
    "RecordCaptionsInput",
    "TranscribeInput",
    "TranscribeResult",
    "captions_workflow_id",
]


class CaptionsState(StrEnum):
    """Where a video's captions are; the values are the API's ``captions_state``."""

    PENDING = "pending"
    AVAILABLE = "available"
    NONE = "none"  # transcribed, and no speech was found: no captions, and none invented
    SKIPPED = "skipped"  # no audio track
    DISABLED = "disabled"  # not asked for
    FAILED = "failed"
    CANCELLED = "cancelled"  # the job was cancelled before the captions were made


def captions_workflow_id(video_id: str) -> str:
    return f"video-{video_id}-captions"


@dataclass
class CaptionsInput:
    video_id: str
    source_key: str
    language: str = defaults.LANGUAGE
    queue_pipeline: str = defaults.QUEUE_PIPELINE
    queue_captions: str = defaults.QUEUE_CAPTIONS
    max_attempts: int | None = None


@dataclass
class ExtractAudioInput:
    video_id: str
    source_key: str


@dataclass
class ExtractAudioResult:
    audio_key: str
    duration: float


@dataclass
class TranscribeInput:
    video_id: str
    audio_key: str
    language: str = defaults.LANGUAGE
    duration: float = 0.0


@dataclass
class TranscribeResult:
    vtt_key: str
    srt_key: str
    transcript_key: str
    segment_count: int
    language: str
    excerpt: str = ""


@dataclass
class RecordCaptionsInput:
    video_id: str
    state: CaptionsState
    language: str = defaults.LANGUAGE
    transcript: TranscribeResult | None = None
    error: str | None = None


@dataclass
class CaptionsResult:
    state: CaptionsState
    language: str = defaults.LANGUAGE
    vtt_key: str | None = None
    srt_key: str | None = None
    transcript_key: str | None = None
    segment_count: int = 0
    excerpt: str = ""
    error: str | None = None
    failed_step: str | None = None
    steps: list[StepState] = field(default_factory=list)
