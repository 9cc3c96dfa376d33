"""VideoPipelineWorkflow: probe, then renditions ∥ poster ∥ captions (child), then record and
notify the owner once.

Branches are isolated (docs/ARCHITECTURE.md rule 5): a failed rendition, poster or captions
branch is recorded in the status and the others carry on. The job ends ready,
ready_with_errors, failed (invalid upload or no rendition at all) or cancelled; the owner is
told once in every case.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ChildWorkflowCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.video import VideoActivities
    from activities.webhooks import WebhookActivities
    from spool.models import (
        CaptionsInput,
        CaptionsResult,
        CaptionsState,
        JobState,
        NotifyOwnerInput,
        PosterInput,
        PosterResult,
        ProbeInput,
        ProbeResult,
        PublishEventInput,
        RecordVideoInput,
        RenditionInput,
        RenditionResult,
        StepStatus,
        VideoPipelineInput,
        VideoStatus,
        captions_workflow_id,
        plan_rendition_heights,
        rendition_name,
    )
    from workflows import policies
    from workflows.errors import failure_message
    from workflows.search_attributes import SPOOL_KIND, SPOOL_STATUS
    from workflows.steps import Step, StepBook

from workflows.captions import CAPTIONS_STEPS, CaptionsWorkflow

# The steps, named as in the status and the saved histories (docs/ARCHITECTURE.md, step table).
PROBE = Step("probe", VideoActivities.probe, policies.PROBE)
RENDITION = Step("rendition", VideoActivities.transcode_rendition, policies.RENDITION)
POSTER = Step("poster", VideoActivities.extract_poster, policies.POSTER)
RECORD = Step("record", VideoActivities.record, policies.RECORD)
NOTIFY = Step("notify", VideoActivities.notify_owner, policies.NOTIFY)
ANNOUNCE_CAPTIONS = Step("announce-captions", WebhookActivities.publish_event,
                         policies.ANNOUNCE_CAPTIONS)


def rendition_step(height: int) -> Step:
    return RENDITION.at(rendition_name(height))


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

    @workflow.query(name="status")
    def status(self) -> VideoStatus:
        inp = self._inp
        return VideoStatus(
            job_id=self._job_id, video_id=inp.video_id if inp else "", state=self._state,
            steps=self._steps.states(), error=self._error,
            captions_state=self._captions_state, renditions=self._renditions_by_height(),
            poster=self._poster, probe=self._probe, captions=self._captions)

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
        probed = await self._steps.run(PROBE, ProbeInput(inp.video_id, inp.source_key),
                                       queue=inp.queue_pipeline)
        if probed.cancelled:
            raise asyncio.CancelledError()
        if not probed.ok:
            self._errors[PROBE.name] = probed.error
            return JobState.FAILED, probed.error
        probe = self._probe = probed.value
        await self._record(RECORD.at("probe"), metadata=probe)
        heights = plan_rendition_heights(probe.height, inp.renditions)
        self._steps.add(*(rendition_step(h).name for h in heights), POSTER.name,
                        *CAPTIONS_STEPS, NOTIFY.name)
        await asyncio.gather(*(self._rendition(h, probe) for h in heights),
                             self._make_poster(probe), self._make_captions(probe))
        return job_outcome(bool(self._renditions), self._errors)

    # --- branches -------------------------------------------------------------------------

    async def _rendition(self, height: int, probe: ProbeResult) -> None:
        inp = self._require_input()
        step = rendition_step(height)
        made = await self._steps.run(
            step, RenditionInput(inp.video_id, inp.source_key, height, probe.has_audio,
                                 probe.duration),
            queue=inp.queue_media, progress=True)
        if made.ok:
            self._renditions[height] = made.value
        elif made.error is not None:
            self._errors[step.name] = made.error

    async def _make_poster(self, probe: ProbeResult) -> None:
        inp = self._require_input()
        made = await self._steps.run(
            POSTER, PosterInput(inp.video_id, inp.source_key, round(probe.duration * 0.1, 3)),
            queue=inp.queue_media)
        if made.ok:
            self._poster = made.value
        elif made.error is not None:
            self._errors[POSTER.name] = made.error

    async def _make_captions(self, probe: ProbeResult) -> None:
        inp = self._require_input()
        if not inp.captions or not probe.has_audio:
            self._steps.skip(CAPTIONS_STEPS,
                             "not requested" if not inp.captions else "no audio track")
            self._captions_state = (CaptionsState.DISABLED if not inp.captions
                                    else CaptionsState.SKIPPED)
            return
        made = await self._steps.track(CAPTIONS_STEPS, workflow.execute_child_workflow(
            CaptionsWorkflow.run,
            CaptionsInput(inp.video_id, inp.source_key, inp.language, inp.queue_pipeline,
                          inp.queue_captions, inp.captions_max_attempts),
            id=captions_workflow_id(inp.video_id), task_queue=inp.queue_pipeline,
            cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            execution_timeout=timedelta(days=2)))
        if made.cancelled:
            return
        if not made.ok:
            self._captions_state = CaptionsState.FAILED
            self._errors["captions"] = made.error
            return
        result = self._captions = made.value
        self._captions_state = result.state
        if result.state == CaptionsState.AVAILABLE and workflow.patched(
                "captions-available-event"):
            self._announcements.append(asyncio.create_task(self._announce_captions(result)))
        self._steps.adopt(result.steps)
        if result.state != CaptionsState.AVAILABLE:
            self._errors["captions"] = result.error or "captions failed"

    async def _announce_captions(self, result: CaptionsResult) -> None:
        inp = self._require_input()
        event = PublishEventInput(
            event_id=f"captions-available:{inp.video_id}",
            event_type="video.captions_available",
            payload={"video_id": inp.video_id, "job_id": self._job_id,
                     "language": result.language, "segments": result.segment_count},
            callback_url=inp.callback_url)
        try:
            await ANNOUNCE_CAPTIONS.execute(event, queue=inp.queue_pipeline)
        except ActivityError as err:
            workflow.logger.warning("captions-available event not delivered: %s",
                                    failure_message(err))

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
            await asyncio.shield(asyncio.ensure_future(
                self._record_final(state, RECORD.at("final-after-cancel"))))
        self._steps.end_unfinished(StepStatus.CANCELLED, names=[NOTIFY.name],
                                   detail=self._cancelled_after(state))

    async def _finish(self, state: JobState, error: str | None) -> None:
        """Record the outcome, then tell the owner once."""
        inp = self._require_input()
        self._error = error if error is not None else self._error
        self._set_state(state)
        await self._record_final(state, RECORD.at("final"))
        payload = {
            "job_id": self._job_id, "error": self._error,
            "captions_state": self._captions_state,
            "renditions": [rendition_name(h) for h in sorted(self._renditions, reverse=True)],
        }
        # The outcome is recorded; a notice that could not be delivered after a day of
        # retries, or was cancelled, is reported on its step, not turned into a failed or
        # cancelled job.
        await self._steps.run(
            NOTIFY, NotifyOwnerInput(inp.video_id, inp.owner_id, state, payload,
                                     inp.callback_url),
            queue=inp.queue_pipeline)
        self._steps.note_cancelled(NOTIFY.name, self._cancelled_after(state))
        self._steps.end_unfinished(
            StepStatus.CANCELLED if state == JobState.CANCELLED else StepStatus.SKIPPED)

    async def _record_final(self, state: JobState, step: Step) -> None:
        await self._record(
            step, status=state, renditions=self._renditions_by_height(),
            poster_key=self._poster.key if self._poster else None,
            captions_state=self._captions_state
            if self._captions_state != CaptionsState.PENDING else None,
            errors=dict(self._errors) or None)
        self._final_recorded = True

    async def _record(self, step: Step, **values) -> None:
        inp = self._require_input()
        await step.execute(RecordVideoInput(inp.video_id, inp.owner_id, **values),
                           queue=inp.queue_pipeline)

    # --- views ----------------------------------------------------------------------------

    def _renditions_by_height(self) -> list[RenditionResult]:
        return [self._renditions[h] for h in sorted(self._renditions, reverse=True)]

    @staticmethod
    def _cancelled_after(state: JobState) -> str:
        return f"cancelled after the job ended {state}"

    def _set_state(self, state: JobState) -> None:
        self._state = state
        workflow.upsert_search_attributes([SPOOL_KIND.value_set("video"),
                                           SPOOL_STATUS.value_set(str(state))])

    def _require_input(self) -> VideoPipelineInput:
        if self._inp is None:  # pragma: no cover - run() sets it first
            raise ApplicationError("workflow input missing")
        return self._inp
