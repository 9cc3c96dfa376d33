"""A video job's live playlists: one rendition's chunks published, in order, as they are
encoded, so the video plays long before it is ready (docs/pipelines.md, "Playable within
seconds"). Part of VideoPipelineWorkflow's delivery; workflow code, no I/O.

The step ``playable`` is done at the first publish (the job's ``playable_at``); later
publishes append to the playlists under activity ids ``playable-00002``… and end them once
every chunk is in. A gap (a chunk whose live cut failed, the rendition or the audio failed)
stops the publishing where it is: the job still delivers everything when it is ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    import workflows.patches as patches
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.video import LiveActivities
    from spool.models import EncodingPlan, LiveAudio, LivePublishInput, ProbeResult, run_text
    from spool.models.failures import failure_message
    from workflows.steps import QueueKind, Step, StepStatus
    from workflows.video_state import VideoJobState

PLAYABLE = Step("playable", LiveActivities.publish_live, policies.PLAYABLE, QueueKind.PIPELINE)
# The delivery's steps whose end can stop the publishing (workflows/delivery.py).
ENCODE, AUDIO = "encode", "audio"


class LivePublisher:
    """Publishes one job's live playlists until every chunk is in, or a gap stops it."""

    def __init__(
        self,
        job: VideoJobState,
        plan: EncodingPlan,
        probe: ProbeResult,
        on_playable: Callable[[], None],
    ) -> None:
        assert plan.live is not None
        self._job = job
        self._state = job.delivery
        self._plan = plan
        self._rendition = next(r for r in plan.renditions if r.name == plan.live.rendition)
        self._has_audio = probe.has_audio
        # The upload's own AAC plays as it is: the first pictures wait for no encode of the
        # whole track (a 10-minute one takes 47 s of ffmpeg alone on a 2-core host).
        self._copies_audio = probe.has_audio and probe.audio_codec == "aac"
        # Other sound: each publish encodes its first part until the whole track is made
        # (a 10-minute upload's first pictures waited 47 s for it).
        self._encodes_part = (
            probe.has_audio and not self._copies_audio and workflow.patched(patches.LIVE_AUDIO_PART)
        )
        self._duration = probe.duration
        self._on_playable = on_playable
        self._published = 0  # chunks in the playlists
        self._publishes = 0
        self._audio: LiveAudio | None = None

    def _in_order(self) -> int:
        """How many chunks from the first have their live segments."""
        done = 0
        while done in self._state.live_chunks:
            done += 1
        return done

    def _audio_ready(self, upto: int) -> bool:
        """Whether chunks up to ``upto`` can be published with their sound: the last
        publish of an upload whose sound is encoded waits for the whole track (it would
        encode it all again)."""
        if not self._has_audio or self._copies_audio or self._state.audio is not None:
            return True
        return self._encodes_part and upto < len(self._plan.chunks)

    def _why_stopped(self) -> str | None:
        """Why nothing more can be published, if so."""
        state = self._state
        if self._rendition.name in state.failed_renditions:
            return f"{self._rendition.name} failed"
        if (
            self._has_audio
            and not self._copies_audio
            and self._job.steps.ended(AUDIO)
            and state.audio is None
        ):
            return "the audio track failed"
        if self._job.steps.ended(ENCODE) and self._in_order() == self._published:
            return "a chunk has no live segments"
        return None

    async def run(self) -> None:
        total = len(self._plan.chunks)
        while self._published < total:
            await workflow.wait_condition(
                lambda: (
                    self._why_stopped() is not None
                    or (self._in_order() > self._published and self._audio_ready(self._in_order()))
                )
            )
            upto = self._in_order()
            if upto <= self._published or not self._audio_ready(upto):
                self._stop(self._why_stopped() or "stopped")
                return
            if not await self._publish(upto, complete=upto == total):
                return

    async def _publish(self, upto: int, *, complete: bool) -> bool:
        """Append chunks [published, upto) to the playlists; False if that failed."""
        self._publishes += 1
        state, first = self._state, self._publishes == 1
        # The sound's first part is encoded here while the whole track is not made.
        encodes = self._encodes_part and state.audio is None
        inp = LivePublishInput(
            video_id=self._job.inp.video_id,
            rendition=self._rendition.name,
            chunks=[state.live_chunks[i] for i in range(self._published, upto)],
            first_index=self._published,
            ceiling_kbps=self._rendition.video_kbps,
            frame_rate=self._plan.fps,
            segment_seconds=self._plan.segment_seconds,
            audio_key=state.audio.key
            if state.audio is not None and not self._copies_audio
            else None,
            source_key=self._job.inp.source_key if self._copies_audio or encodes else None,
            encode_kbps=self._plan.audio_kbps if encodes else 0,
            duration=self._duration if encodes else 0.0,
            audio=self._audio,
            complete=complete,
            previous_config=state.live_chunks[self._published - 1].config
            if self._published
            else "",
        )
        step = PLAYABLE if first else PLAYABLE.at(f"{self._publishes:05d}")
        if first:
            self._job.steps.start(PLAYABLE.name)
        summary = (
            f"live {self._rendition.name}{run_text.SEP}chunks {self._published}-{upto - 1}"
            f" of {len(self._plan.chunks)}" + (", the last" if complete else "")
        )
        try:
            made = await self._job.steps.execute(step, inp, summary=summary)
        except ActivityError as err:
            if not is_cancelled_exception(err):
                workflow.logger.warning("live playlists not published: %s", failure_message(err))
                self._stop(failure_message(err), failed=True)
            return False
        self._audio, self._published = made.audio, upto
        if first:
            self._job.steps.end_unfinished(StepStatus.DONE, names=[PLAYABLE.name])
            self._on_playable()
        return True

    def _stop(self, why: str, *, failed: bool = False) -> None:
        """Nothing more is published; the step says why if it was never done."""
        steps = self._job.steps
        if self._published == 0:
            steps.end_unfinished(
                StepStatus.FAILED if failed else StepStatus.SKIPPED,
                names=[PLAYABLE.name],
                error=why if failed else None,
                detail=None if failed else why,
            )


class EncodeWaves:
    """When a job's media tasks may be scheduled. Tasks scheduled together reach the
    server's matching in no set order, and an idle media host is handed whichever arrives
    first, whatever its priority (priority orders only what waits): so the job schedules in
    waves, one timer apart. Without live playlists: the long chunks, then the short ones
    (workflows/delivery.py, LATE_ENCODES_DELAY). A job that plays early: its first chunk
    (with the poster, from the same task), then its other first chunks and its audio, then
    the long chunks, then the short ones."""

    def __init__(self, plays_early: bool, delay: float) -> None:
        self.first_first = plays_early  # the job plays early: its first chunk goes first
        self._delay = delay
        self._timers: dict[int, asyncio.Future[None]] = {}

    def wave_of(self, priority: Priority, first: bool = False) -> int:
        key = priority.priority_key
        if not self.first_first:
            return 1 if key == policies.LATE_ENCODE.priority_key else 0
        if first:
            return 0
        if key == policies.PLAYABLE_FIRST.priority_key:
            return 1
        return 3 if key == policies.LATE_ENCODE.priority_key else 2

    async def turn(self, priority: Priority, first: bool = False) -> None:
        """Return once a task of this priority (``first``: the job's first chunk) may be
        scheduled."""
        wave = self.wave_of(priority, first)
        if wave:
            await self._after(wave)

    async def _after(self, wave: int) -> None:
        if wave not in self._timers:
            self._timers[wave] = asyncio.ensure_future(self._timer(wave))
        await self._timers[wave]

    async def _timer(self, wave: int) -> None:
        if wave > 1:
            await self._after(wave - 1)
        summary = (
            "short encodes, after the long ones"
            if not self.first_first
            else ("", "the first chunks and the audio", "the long chunks", "the short chunks")[wave]
        )
        await workflow.sleep(self._delay, summary=summary)
