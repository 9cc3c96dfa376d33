"""What a video job knows while it runs: one state, read by the ``status`` query and written
by the workflow (workflows/video.py) and its delivery (workflows/delivery.py). Workflow code,
no I/O."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spool.models import (
        AudioTrackResult,
        CaptionsResult,
        CaptionsState,
        EncodingPlan,
        HlsVariantInfo,
        JobState,
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
        )
