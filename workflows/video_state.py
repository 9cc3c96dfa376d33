"""What a video job knows while it runs: one state, read by the ``status`` query and written
by the workflow (workflows/video.py) and its delivery (workflows/delivery.py). Workflow code,
no I/O."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.patches as patches
    from spool.models import (
        AudioTrackResult,
        CaptionsResult,
        CaptionsState,
        EncodingPlan,
        HlsVariantInfo,
        JobState,
        LiveChunk,
        MasterPlaylistResult,
        PosterResult,
        ProbeResult,
        RenditionResult,
        StoryboardResult,
        VideoPipelineInput,
        VideoStatus,
    )
    from workflows.steps import StepBook


@dataclass
class DeliveryState:
    """How far the renditions are: chunks, audio track, packages, storyboard, playlist."""

    plan: EncodingPlan | None = None
    shares: dict[str, float] = field(default_factory=dict)  # chunk activity id -> % of source
    running_chunks: set[str] = field(default_factory=set)
    encoded: float = 0.0  # points of the source whose chunks are done
    chunk_keys: dict[str, dict[int, str]] = field(default_factory=dict)  # rendition -> index -> key
    made_share: dict[str, float] = field(default_factory=dict)  # rendition -> points made
    failed_renditions: dict[str, str] = field(default_factory=dict)  # rendition -> first error
    thumbs: int = 0
    audio: AudioTrackResult | None = None
    variants: dict[str, HlsVariantInfo] = field(default_factory=dict)  # rendition -> variant
    hls: MasterPlaylistResult | None = None
    storyboard: StoryboardResult | None = None
    # The live playlists (workflows/live.py): each chunk's live segments by index.
    live_chunks: dict[int, LiveChunk] = field(default_factory=dict)
    playable_at: str | None = None  # ISO 8601, the first live publish


@dataclass
class VideoJobState:
    """One video job's state, from its input to its outcome."""

    inp: VideoPipelineInput
    job_id: str
    steps: StepBook
    state: JobState = JobState.PROCESSING
    error: str | None = None
    # Failed branches by name, in the order they failed: the job's error and errors column.
    errors: dict[str, str] = field(default_factory=dict)
    probe: ProbeResult | None = None
    renditions: dict[int, RenditionResult] = field(default_factory=dict)  # height -> made
    poster: PosterResult | None = None
    captions: CaptionsResult | None = None
    captions_state: CaptionsState = CaptionsState.PENDING
    delivery: DeliveryState = field(default_factory=DeliveryState)
    # Announcements run beside the job: a slow webhook receiver delays the workflow's close,
    # never the job's state.
    announcements: list[asyncio.Task[None]] = field(default_factory=list)
    final_recorded: bool = False

    def renditions_by_height(self) -> list[RenditionResult]:
        return [self.renditions[h] for h in sorted(self.renditions, reverse=True)]

    def status(self, step_shares: dict[str, dict[str, float]]) -> VideoStatus:
        return VideoStatus(
            job_id=self.job_id,
            video_id=self.inp.video_id,
            state=self.state,
            steps=self.steps.states(),
            error=self.error,
            captions_state=self.captions_state,
            renditions=self.renditions_by_height(),
            poster=self.poster,
            probe=self.probe,
            captions=self.captions,
            hls=self.delivery.hls,
            storyboard=self.delivery.storyboard,
            step_shares=step_shares,
            playable_at=self.delivery.playable_at,
        )


def job_outcome(made_renditions: bool, errors: dict[str, str]) -> tuple[JobState, str | None]:
    """The state a job that ran its branches ends in, and the error it reports."""
    summary = "; ".join(f"{name}: {msg}" for name, msg in errors.items()) or None
    if not made_renditions:
        reason = "no rendition could be made"
        return JobState.FAILED, f"{reason}: {summary}" if summary else reason
    if summary:
        return JobState.READY_WITH_ERRORS, summary
    return JobState.READY, None


def cancelled_after(state: JobState) -> str:
    return f"cancelled after the job ended {state}"


def rung_side(probe: ProbeResult) -> int:
    """The side of the source's picture its rungs are chosen by: the short side. Runs begun
    before renditions were chosen this way chose a portrait video's by its height, and
    replay that (the patch is asked only for a portrait source, whose rungs differ)."""
    if probe.width < probe.height and workflow.patched(patches.RUNGS_BY_SHORT_SIDE):
        return probe.width
    return probe.height
