"""VideoPipelineWorkflow: probe, then renditions ∥ poster ∥ captions (child), then record and
notify the owner once.

The renditions are made from time chunks: plan → chunks ∥ audio → per rendition one package
(progressive MP4 + HLS variant) ∥ storyboard → master playlist.

Branches are isolated (docs/ARCHITECTURE.md rule 5): a failed rendition, poster or captions
branch is recorded in the status and the others carry on. The job ends ready,
ready_with_errors, failed (invalid upload or no rendition at all) or cancelled; the owner is
told once in every case.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ChildWorkflowCancellationType

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.video import VideoActivities
    from activities.webhooks import WebhookActivities
    from spool.models import (
        AudioTrackInput,
        AudioTrackResult,
        CaptionsInput,
        CaptionsResult,
        CaptionsState,
        ChunkInput,
        ChunkPlan,
        EncodingPlan,
        EncodingPlanInput,
        HlsVariantInfo,
        JobState,
        MasterPlaylistInput,
        MasterPlaylistResult,
        NotifyOwnerInput,
        PackageInput,
        PosterInput,
        PosterResult,
        ProbeInput,
        ProbeResult,
        PublishEventInput,
        RecordVideoInput,
        RenditionPlan,
        RenditionResult,
        StepStatus,
        StoryboardInput,
        StoryboardResult,
        VideoPipelineInput,
        VideoStatus,
        captions_workflow_id,
        plan_rendition_heights,
        rendition_name,
    )
    from spool.models.search_attributes import SPOOL_KIND, SPOOL_STATUS
    from workflows.errors import failure_message
    from workflows.steps import Step, StepBook, every_branch

from workflows.captions import CAPTIONS_STEPS, CaptionsWorkflow

# The steps, named as in the status and the saved histories (docs/ARCHITECTURE.md, step table).
PROBE = Step("probe", VideoActivities.probe, policies.PROBE)
POSTER = Step("poster", VideoActivities.extract_poster, policies.POSTER)
RECORD = Step("record", VideoActivities.record, policies.RECORD)
NOTIFY = Step("notify", VideoActivities.notify_owner, policies.NOTIFY)
ANNOUNCE_CAPTIONS = Step(
    "announce-captions", WebhookActivities.publish_event, policies.ANNOUNCE_CAPTIONS
)
# ``encode`` and ``package`` are aggregates in the status: their items (``encode-00003``,
# ``package-720p``) are the activities. ``rendition-720p`` is a status step only: its progress
# is derived from its chunks, and it is done once its package is (docs/ARCHITECTURE.md, step
# table).
RENDITION = "rendition"
PLAN = Step("plan", VideoActivities.plan_encoding, policies.PLAN)
ENCODE = Step("encode", VideoActivities.encode_chunk, policies.ENCODE)
AUDIO = Step("audio", VideoActivities.encode_audio, policies.AUDIO)
PACKAGE = Step("package", VideoActivities.package_rendition, policies.PACKAGE)
STORYBOARD = Step("storyboard", VideoActivities.make_storyboard, policies.STORYBOARD)
HLS = Step("hls", VideoActivities.publish_hls, policies.HLS)


# Late encodes (short chunks, a clip's audio track) are scheduled one workflow task after the
# early ones. A media host polling when tasks arrive is handed the
# first to arrive, whatever its priority (priority orders only what waits), and a job's tasks
# arrive in no set order: idle hosts took the two short chunks first in one bench run of
# three. Arriving a timer later, the late ones find the hosts busy and wait. The server fires
# the shortest timer after about a second (its resolution): a clip small enough to encode its
# long chunks faster than that waits for its short ones up to a second longer.
LATE_ENCODES_DELAY = 0.001  # seconds asked; the timer only has to end the workflow task


def rendition_step(name: str) -> str:
    """The status step of one rendition: ``rendition-720p``."""
    return f"{RENDITION}-{name}"


def chunk_step(chunk: ChunkPlan) -> Step:
    return ENCODE.at(f"{chunk.index:05d}")


def longest_chunk(plan: EncodingPlan) -> float:
    return max(c.duration for c in plan.chunks)


def chunk_shares(chunks: list[ChunkPlan]) -> dict[str, float]:
    """Each chunk's activity id and its share of the source, in percentage points."""
    total = sum(c.duration for c in chunks) or 1.0
    return {chunk_step(c).name: c.duration / total * 100.0 for c in chunks}


def job_outcome(made_renditions: bool, errors: dict[str, str]) -> tuple[JobState, str | None]:
    """The state a job that ran its branches ends in, and the error it reports."""
    summary = "; ".join(f"{name}: {msg}" for name, msg in errors.items()) or None
    if not made_renditions:
        reason = "no rendition could be made"
        return JobState.FAILED, f"{reason}: {summary}" if summary else reason
    if summary:
        return JobState.READY_WITH_ERRORS, summary
    return JobState.READY, None


@workflow.defn(name="VideoPipelineWorkflow")
class VideoPipelineWorkflow:
    def __init__(self) -> None:
        self._inp: VideoPipelineInput | None = None
        self._job_id = ""
        self._state = JobState.PROCESSING
        self._error: str | None = None
        # Failed branches by name, in the order they failed: the job's error and errors column.
        self._errors: dict[str, str] = {}
        self._steps = StepBook([PROBE.name])
        self._probe: ProbeResult | None = None
        self._renditions: dict[int, RenditionResult] = {}
        self._poster: PosterResult | None = None
        self._captions: CaptionsResult | None = None
        self._captions_state = CaptionsState.PENDING
        # Announcements run beside the job: a slow webhook receiver delays the workflow's
        # close, never the job's state.
        self._announcements: list[asyncio.Task] = []
        self._final_recorded = False
        # Chunked path.
        self._plan: EncodingPlan | None = None
        self._shares: dict[str, float] = {}  # chunk activity id -> share of the source
        self._running_chunks: set[str] = set()
        self._encoded = 0.0  # points of the source whose chunks are done
        self._chunk_keys: dict[str, dict[int, str]] = {}  # rendition -> chunk index -> key
        self._made_share: dict[str, float] = {}  # rendition -> points made
        self._failed_renditions: dict[str, str] = {}
        self._thumbs = 0
        self._audio: AudioTrackResult | None = None
        self._variants: dict[str, HlsVariantInfo] = {}
        self._hls: MasterPlaylistResult | None = None
        self._storyboard: StoryboardResult | None = None
        self._late_encodes: asyncio.Task | None = None

    @workflow.query(name="status")
    def status(self) -> VideoStatus:
        inp = self._inp
        return VideoStatus(
            job_id=self._job_id,
            video_id=inp.video_id if inp else "",
            state=self._state,
            steps=self._steps.states(),
            error=self._error,
            captions_state=self._captions_state,
            renditions=self._renditions_by_height(),
            poster=self._poster,
            probe=self._probe,
            captions=self._captions,
            hls=self._hls,
            storyboard=self._storyboard,
            step_shares=self._step_shares(),
        )

    @workflow.run
    async def run(self, inp: VideoPipelineInput) -> VideoStatus:
        self._inp = inp
        self._job_id = workflow.info().workflow_id
        self._set_state(JobState.PROCESSING)
        if not inp.captions:
            self._captions_state = CaptionsState.DISABLED
        try:
            await self._record(RECORD.at("start"), status=JobState.PROCESSING)
            state, error = await self._process(inp)
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        await self._end(state, error)
        return self.status()

    async def _process(self, inp: VideoPipelineInput) -> tuple[JobState, str | None]:
        """probe ─┬─ renditions ∥ poster ∥ captions: the outcome once every branch ended."""
        probed = await self._steps.run(
            PROBE, ProbeInput(inp.video_id, inp.source_key), queue=inp.queue_pipeline
        )
        if probed.cancelled:
            raise asyncio.CancelledError()
        if not probed.ok:
            self._errors[PROBE.name] = probed.error
            return JobState.FAILED, probed.error
        probe = self._probe = probed.value
        await self._record(RECORD.at("probe"), metadata=probe)
        heights = plan_rendition_heights(probe.height, inp.renditions)
        await self._process_chunked(probe, heights)
        return job_outcome(bool(self._renditions), self._errors)

    # --- chunked path -----------------------------------------------------------------------

    async def _process_chunked(self, probe: ProbeResult, heights: list[int]) -> None:
        """plan ─┬─ (chunks ∥ audio → packages ∥ storyboard → master playlist) ∥ poster ∥
        captions."""
        inp = self._require_input()
        if not heights:  # none of the requested renditions fits the source: nothing to plan
            self._steps.add(POSTER.name, *CAPTIONS_STEPS, NOTIFY.name)
            await every_branch(self._make_poster(probe), self._make_captions(probe))
            return
        planned = await self._steps.run(
            PLAN, EncodingPlanInput(inp.video_id, probe, heights), queue=inp.queue_pipeline
        )
        if planned.cancelled:
            raise asyncio.CancelledError()
        if not planned.ok:
            self._errors[PLAN.name] = planned.error
            return
        plan = self._plan = planned.value
        self._steps.add(
            ENCODE.name,
            *self._rendition_steps(plan),
            AUDIO.name,
            POSTER.name,
            *CAPTIONS_STEPS,
            PACKAGE.name,
            STORYBOARD.name,
            HLS.name,
            NOTIFY.name,
        )
        await every_branch(
            self._deliver(plan, probe), self._make_poster(probe), self._make_captions(probe)
        )

    async def _deliver(self, plan: EncodingPlan, probe: ProbeResult) -> None:
        await every_branch(self._encode_chunks(plan), self._make_audio_track(plan, probe))
        await every_branch(self._package_all(plan, probe), self._make_storyboard(plan, probe))
        await self._publish_hls(plan)

    async def _encode_chunks(self, plan: EncodingPlan) -> None:
        """Every chunk at once (the media workers' slots pace them); a chunk that failed as a
        whole after its retries fails every rendition, one that lost a rendition only that
        rendition."""
        self._shares = chunk_shares(plan.chunks)
        self._steps.start(ENCODE.name, *self._rendition_steps(plan))
        longest = longest_chunk(plan)
        failures = [
            f
            for f in await every_branch(
                *(
                    self._encode_chunk(
                        chunk, plan, policies.encode_priority(chunk.duration, longest)
                    )
                    for chunk in plan.chunks
                )
            )
            if f
        ]
        if not failures:
            self._steps.end_unfinished(StepStatus.DONE, names=[ENCODE.name])
            return
        self._errors[ENCODE.name] = "; ".join(failures)
        self._steps.end_unfinished(
            StepStatus.FAILED, names=[ENCODE.name], error=self._errors[ENCODE.name]
        )
        for rendition in plan.renditions:
            self._fail_rendition(rendition.name, failures[0], record=False)

    async def _encode_chunk(
        self, chunk: ChunkPlan, plan: EncodingPlan, priority: Priority
    ) -> str | None:
        """One chunk of every rendition; the error it failed with as a whole, if it did."""
        inp = self._require_input()
        step = chunk_step(chunk)
        await self._turn_of(priority)
        self._running_chunks.add(step.name)
        try:
            made = await step.execute(
                ChunkInput(
                    inp.video_id,
                    inp.source_key,
                    chunk,
                    plan.renditions,
                    plan.fps,
                    plan.segment_seconds,
                    plan.thumb_every,
                    plan.thumb_width,
                ),
                queue=inp.queue_media,
                priority=priority,
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                return None  # the job's cancel: the gather raises it once every chunk stopped
            return f"chunk {chunk.index}: {failure_message(err)}"
        finally:
            self._running_chunks.discard(step.name)
        share = self._shares[step.name]
        self._encoded += share
        self._steps.set_percent(ENCODE.name, self._encoded)
        self._thumbs += made.thumbs
        for rendition in plan.renditions:
            self._take_chunk(
                rendition,
                chunk,
                made.files.get(rendition.name),
                made.failed.get(rendition.name),
                share,
                len(plan.chunks),
            )
        return None

    async def _turn_of(self, priority: Priority) -> None:
        """Return once an encode of this priority may be scheduled: a late one in the
        workflow task after the early ones, by one timer they share."""
        if priority != policies.LATE_ENCODE:
            return
        if self._late_encodes is None:
            self._late_encodes = asyncio.ensure_future(asyncio.sleep(LATE_ENCODES_DELAY))
        await self._late_encodes

    def _take_chunk(
        self,
        rendition: RenditionPlan,
        chunk: ChunkPlan,
        key: str | None,
        error: str | None,
        share: float,
        chunks: int,
    ) -> None:
        if error is not None or key is None:
            self._fail_rendition(
                rendition.name, f"chunk {chunk.index}: {error or 'no file was made'}"
            )
            return
        made = self._chunk_keys.setdefault(rendition.name, {})
        made[chunk.index] = key
        self._made_share[rendition.name] = self._made_share.get(rendition.name, 0.0) + share
        if rendition.name not in self._failed_renditions:
            self._steps.set_percent(
                rendition_step(rendition.name),
                100.0 if len(made) == chunks else self._made_share[rendition.name],
            )

    def _fail_rendition(self, name: str, error: str, *, record: bool = True) -> None:
        """The first error of a rendition fails it; ``record`` False when the cause is
        already in the job's errors under its own step (a whole chunk, the audio)."""
        if name in self._failed_renditions:
            return
        self._failed_renditions[name] = error
        step = rendition_step(name)
        self._steps.end_unfinished(StepStatus.FAILED, names=[step], error=error)
        if record:
            self._errors[step] = error

    async def _make_audio_track(self, plan: EncodingPlan, probe: ProbeResult) -> None:
        """The whole source's AAC track once: per-chunk audio would leave a priming gap at
        every chunk boundary."""
        inp = self._require_input()
        if not probe.has_audio:
            self._steps.skip([AUDIO.name], "no audio track")
            return
        priority = policies.audio_priority(probe.duration, longest_chunk(plan))
        await self._turn_of(priority)
        made = await self._steps.run(
            AUDIO,
            AudioTrackInput(
                inp.video_id, inp.source_key, plan.audio_kbps, plan.segment_seconds, probe.duration
            ),
            queue=inp.queue_media,
            progress=True,
            priority=priority,
        )
        if made.ok:
            self._audio = made.value
        elif made.error is not None:
            # Every rendition carries this sound: none can be delivered without it.
            self._errors[AUDIO.name] = made.error
            for rendition in plan.renditions:
                self._fail_rendition(rendition.name, f"audio: {made.error}", record=False)

    async def _package_all(self, plan: EncodingPlan, probe: ProbeResult) -> None:
        ready = [
            r
            for r in plan.renditions
            if r.name not in self._failed_renditions
            and len(self._chunk_keys.get(r.name, {})) == len(plan.chunks)
            and (self._audio is not None or not probe.has_audio)
        ]
        if not ready:
            self._steps.skip([PACKAGE.name], "no rendition was encoded")
            return
        self._steps.start(PACKAGE.name)
        failed = [
            f for f in await every_branch(*(self._package(r, plan, probe) for r in ready)) if f
        ]
        self._steps.end_unfinished(
            StepStatus.FAILED if failed else StepStatus.DONE,
            names=[PACKAGE.name],
            error="; ".join(failed) if failed else None,
        )

    async def _package(
        self, rendition: RenditionPlan, plan: EncodingPlan, probe: ProbeResult
    ) -> str | None:
        """Join one rendition's chunks with the audio (its progressive MP4) and cut its HLS
        variant, by stream copy; the error, if it failed."""
        inp = self._require_input()
        step = rendition_step(rendition.name)
        made_keys = self._chunk_keys[rendition.name]
        made = await self._steps.track(
            (step,),
            PACKAGE.at(rendition.name).execute(
                PackageInput(
                    inp.video_id,
                    rendition,
                    [made_keys[c.index] for c in plan.chunks],
                    self._audio.key if self._audio else None,
                    plan.segment_seconds,
                    probe.duration,
                ),
                queue=inp.queue_media,
            ),
            progress=True,
        )
        if made.ok:
            self._renditions[rendition.height] = made.value.rendition
            self._variants[rendition.name] = made.value.variant
            return None
        if made.error is None:
            return None
        self._failed_renditions[rendition.name] = made.error
        self._errors[step] = made.error
        return f"{rendition.name}: {made.error}"

    async def _make_storyboard(self, plan: EncodingPlan, probe: ProbeResult) -> None:
        inp = self._require_input()
        if plan.thumb_every is None or not self._thumbs:
            self._steps.skip([STORYBOARD.name], "no thumbnails were made")
            return
        if len(self._failed_renditions) == len(plan.renditions):
            self._steps.skip([STORYBOARD.name], "no rendition was encoded")
            return
        made = await self._steps.run(
            STORYBOARD,
            StoryboardInput(
                inp.video_id,
                plan.thumb_every,
                plan.storyboard_columns,
                plan.storyboard_rows,
                probe.duration,
            ),
            queue=inp.queue_media,
        )
        if made.ok:
            self._storyboard = made.value
        elif made.error is not None:
            self._errors[STORYBOARD.name] = made.error

    async def _publish_hls(self, plan: EncodingPlan) -> None:
        """The master playlist, written last: a player finds it only once every variant it
        lists is stored."""
        inp = self._require_input()
        variants = [self._variants[r.name] for r in plan.renditions if r.name in self._variants]
        if not variants:
            self._steps.skip([HLS.name], "no rendition was packaged")
            return
        made = await self._steps.run(
            HLS,
            MasterPlaylistInput(
                inp.video_id,
                variants,
                audio_key=self._audio.key if self._audio else None,
                segment_seconds=plan.segment_seconds,
            ),
            queue=inp.queue_pipeline,
        )
        if made.ok:
            self._hls = made.value
        elif made.error is not None:
            self._errors[HLS.name] = made.error

    @staticmethod
    def _rendition_steps(plan: EncodingPlan) -> list[str]:
        return [rendition_step(r.name) for r in plan.renditions]

    def _step_shares(self) -> dict[str, dict[str, float]]:
        """What running chunks add to the encode step and each live rendition's percent."""
        if self._plan is None or not self._running_chunks:
            return {}
        running = {name: round(self._shares[name], 3) for name in sorted(self._running_chunks)}
        shares = {ENCODE.name: running}
        for rendition in self._plan.renditions:
            if rendition.name not in self._failed_renditions:
                shares[rendition_step(rendition.name)] = running
        return shares

    # --- branches -------------------------------------------------------------------------

    async def _make_poster(self, probe: ProbeResult) -> None:
        inp = self._require_input()
        made = await self._steps.run(
            POSTER,
            PosterInput(inp.video_id, inp.source_key, round(probe.duration * 0.1, 3)),
            queue=inp.queue_media,
        )
        if made.ok:
            self._poster = made.value
        elif made.error is not None:
            self._errors[POSTER.name] = made.error

    async def _make_captions(self, probe: ProbeResult) -> None:
        inp = self._require_input()
        if not inp.captions or not probe.has_audio:
            self._steps.skip(
                CAPTIONS_STEPS, "not requested" if not inp.captions else "no audio track"
            )
            self._captions_state = (
                CaptionsState.DISABLED if not inp.captions else CaptionsState.SKIPPED
            )
            return
        made = await self._steps.track(
            CAPTIONS_STEPS,
            workflow.execute_child_workflow(
                CaptionsWorkflow.run,
                CaptionsInput(
                    inp.video_id,
                    inp.source_key,
                    inp.language,
                    inp.queue_pipeline,
                    inp.queue_captions,
                    inp.captions_max_attempts,
                ),
                id=captions_workflow_id(inp.video_id),
                task_queue=inp.queue_pipeline,
                cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                execution_timeout=timedelta(days=2),
            ),
        )
        if made.cancelled:
            return
        if not made.ok:
            self._captions_state = CaptionsState.FAILED
            self._errors["captions"] = made.error
            return
        result = self._captions = made.value
        self._captions_state = result.state
        if result.state == CaptionsState.AVAILABLE:
            self._announcements.append(asyncio.create_task(self._announce_captions(result)))
        self._steps.adopt(result.steps)
        if result.state != CaptionsState.AVAILABLE:
            self._errors["captions"] = result.error or "captions failed"

    async def _announce_captions(self, result: CaptionsResult) -> None:
        inp = self._require_input()
        event = PublishEventInput(
            event_id=f"captions-available:{inp.video_id}",
            event_type="video.captions_available",
            payload={
                "video_id": inp.video_id,
                "job_id": self._job_id,
                "language": result.language,
                "segments": result.segment_count,
            },
            callback_url=inp.callback_url,
        )
        try:
            await ANNOUNCE_CAPTIONS.execute(event, queue=inp.queue_pipeline)
        except ActivityError as err:
            workflow.logger.warning(
                "captions-available event not delivered: %s", failure_message(err)
            )

    # --- ending ---------------------------------------------------------------------------
    # A cancel is handled here only. Before the outcome is decided it stops every branch,
    # waits until its ffmpeg/Whisper has really stopped, and ends the job cancelled; after,
    # the job keeps its outcome and the cancel only stops the notices still being delivered.

    async def _end_cancelled(self) -> None:
        self._steps.end_unfinished(StepStatus.CANCELLED)
        if self._captions_state == CaptionsState.PENDING:
            self._captions_state = CaptionsState.CANCELLED
        # Recording and announcing the cancel must not itself be cancelled.
        await asyncio.shield(asyncio.ensure_future(self._finish(JobState.CANCELLED, None)))

    async def _end(self, state: JobState, error: str | None) -> None:
        try:
            await self._finish(state, error)
            await asyncio.gather(*self._announcements)
        except (asyncio.CancelledError, ActivityError) as err:
            if not is_cancelled_exception(err):
                raise
            await self._stop_notices(state)

    async def _stop_notices(self, state: JobState) -> None:
        for task in self._announcements:
            task.cancel()
        await asyncio.gather(*self._announcements, return_exceptions=True)
        if not self._final_recorded:
            # A new activity id: the interrupted attempt may still be pending under the old.
            await asyncio.shield(
                asyncio.ensure_future(self._record_final(state, RECORD.at("final-after-cancel")))
            )
        self._steps.end_unfinished(
            StepStatus.CANCELLED, names=[NOTIFY.name], detail=self._cancelled_after(state)
        )

    async def _finish(self, state: JobState, error: str | None) -> None:
        """Record the outcome, then tell the owner once."""
        inp = self._require_input()
        self._error = error if error is not None else self._error
        self._set_state(state)
        await self._record_final(state, RECORD.at("final"))
        # In order per video: "captions available" is delivered (or given up on; it never
        # raises) before "video ready" goes to the same receivers. The outcome is already
        # recorded, so only the notice waits.
        await asyncio.gather(*self._announcements)
        payload = {
            "job_id": self._job_id,
            "error": self._error,
            "captions_state": self._captions_state,
            "renditions": [rendition_name(h) for h in sorted(self._renditions, reverse=True)],
        }
        # The outcome is recorded; a notice that could not be delivered after a day of
        # retries, or was cancelled, is reported on its step, not turned into a failed or
        # cancelled job.
        await self._steps.run(
            NOTIFY,
            NotifyOwnerInput(inp.video_id, inp.owner_id, state, payload, inp.callback_url),
            queue=inp.queue_pipeline,
        )
        self._steps.note_cancelled(NOTIFY.name, self._cancelled_after(state))
        self._steps.end_unfinished(
            StepStatus.CANCELLED if state == JobState.CANCELLED else StepStatus.SKIPPED
        )

    async def _record_final(self, state: JobState, step: Step) -> None:
        await self._record(
            step,
            status=state,
            renditions=self._renditions_by_height(),
            poster_key=self._poster.key if self._poster else None,
            captions_state=self._captions_state
            if self._captions_state != CaptionsState.PENDING
            else None,
            errors=dict(self._errors) or None,
            hls_key=self._hls.key if self._hls else None,
            storyboard_key=self._storyboard.vtt_key if self._storyboard else None,
        )
        self._final_recorded = True

    async def _record(self, step: Step, **values) -> None:
        inp = self._require_input()
        await step.execute(
            RecordVideoInput(inp.video_id, inp.owner_id, **values), queue=inp.queue_pipeline
        )

    # --- views ----------------------------------------------------------------------------

    def _renditions_by_height(self) -> list[RenditionResult]:
        return [self._renditions[h] for h in sorted(self._renditions, reverse=True)]

    @staticmethod
    def _cancelled_after(state: JobState) -> str:
        return f"cancelled after the job ended {state}"

    def _set_state(self, state: JobState) -> None:
        self._state = state
        workflow.upsert_search_attributes(
            [SPOOL_KIND.value_set("video"), SPOOL_STATUS.value_set(str(state))]
        )

    def _require_input(self) -> VideoPipelineInput:
        if self._inp is None:  # pragma: no cover - run() sets it first
            raise ApplicationError("workflow input missing")
        return self._inp
