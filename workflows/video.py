"""VideoPipelineWorkflow: probe, then renditions ∥ poster ∥ captions (child), then record and
notify the owner once.

Branches are isolated: a failed rendition, poster or captions branch is recorded in the status
and the others carry on. The job ends ready, ready_with_errors, failed (invalid upload or no
rendition at all) or cancelled; the owner is told once in every case.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)
from temporalio.workflow import ActivityCancellationType, ChildWorkflowCancellationType

with workflow.unsafe.imports_passed_through():
    from spool.models import (
        CAPTIONS_AVAILABLE,
        CAPTIONS_DISABLED,
        CAPTIONS_FAILED,
        CAPTIONS_PENDING,
        CAPTIONS_SKIPPED,
        JOB_CANCELLED,
        JOB_FAILED,
        JOB_PROCESSING,
        JOB_READY,
        JOB_READY_WITH_ERRORS,
        STEP_CANCELLED,
        STEP_DONE,
        STEP_FAILED,
        STEP_PENDING,
        STEP_RUNNING,
        STEP_SKIPPED,
        CaptionsInput,
        CaptionsResult,
        NotifyOwnerInput,
        PosterInput,
        PosterResult,
        ProbeInput,
        ProbeResult,
        PublishEventInput,
        RecordVideoInput,
        RenditionInput,
        RenditionResult,
        StepState,
        VideoPipelineInput,
        VideoStatus,
        captions_workflow_id,
        plan_rendition_heights,
        rendition_name,
    )
    from workflows import policies
    from workflows.errors import failure_message
    from workflows.search_attributes import SPOOL_KIND, SPOOL_STATUS

CAPTIONS_STEPS = ("extract_audio", "transcribe")
WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED



def rendition_step(height: int) -> str:
    return f"rendition-{rendition_name(height)}"


@workflow.defn(name="VideoPipelineWorkflow")
class VideoPipelineWorkflow:
    def __init__(self) -> None:
        self._inp: VideoPipelineInput | None = None
        self._job_id = ""
        self._state = JOB_PROCESSING
        self._error: str | None = None
        self._errors: dict[str, str] = {}
        self._steps: dict[str, StepState] = {"probe": StepState(name="probe")}
        self._probe: ProbeResult | None = None
        self._renditions: dict[int, RenditionResult] = {}
        self._poster: PosterResult | None = None
        self._captions: CaptionsResult | None = None
        self._captions_state = CAPTIONS_PENDING
        # Announcements run beside the job: a slow webhook receiver delays the workflow's
        # close, never the job's state.
        self._announcements: list[asyncio.Task] = []
        self._final_recorded = False

    @workflow.query(name="status")
    def status(self) -> VideoStatus:
        inp = self._inp
        return VideoStatus(
            job_id=self._job_id, video_id=inp.video_id if inp else "", state=self._state,
            steps=list(self._steps.values()), error=self._error,
            captions_state=self._captions_state,
            renditions=[self._renditions[h] for h in sorted(self._renditions, reverse=True)],
            poster=self._poster, probe=self._probe, captions=self._captions)

    @workflow.run
    async def run(self, inp: VideoPipelineInput) -> VideoStatus:
        self._inp = inp
        self._job_id = workflow.info().workflow_id
        self._set_state(JOB_PROCESSING)
        if not inp.captions:
            self._captions_state = CAPTIONS_DISABLED
        tasks: list[asyncio.Task] = []
        try:
            await self._record(activity_id="record-start", status=JOB_PROCESSING)
            probe = await self._probe_source(inp)
            if probe is None:
                await self._finish(JOB_FAILED)
                return self.status()
            heights = plan_rendition_heights(probe.height, inp.renditions)
            for h in heights:
                self._steps[rendition_step(h)] = StepState(name=rendition_step(h))
            self._steps["poster"] = StepState(name="poster")
            for name in CAPTIONS_STEPS:
                self._steps[name] = StepState(name=name)
            self._steps["notify"] = StepState(name="notify")
            tasks = [asyncio.create_task(self._rendition(h, probe)) for h in heights]
            tasks.append(asyncio.create_task(self._make_poster(probe)))
            tasks.append(asyncio.create_task(self._make_captions(probe)))
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Stop every branch and wait until its ffmpeg/Whisper has really stopped, then
            # record and announce the cancel; that cleanup must not itself be cancelled.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for step in self._steps.values():
                if step.state in (STEP_PENDING, STEP_RUNNING):
                    step.state = STEP_CANCELLED
            if self._captions_state == CAPTIONS_PENDING:
                self._captions_state = "cancelled"
            await asyncio.shield(asyncio.ensure_future(self._finish(JOB_CANCELLED)))
            raise
        final_state = self._final_state(heights)
        try:
            await self._finish(final_state)
            await asyncio.gather(*self._announcements)
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not is_cancelled_exception(err):
                raise
            # The outcome was decided before the cancel arrived: the job keeps its state
            # (recorded even if the cancel interrupted that), and a cancel now only stops
            # the notices still being delivered.
            await self._stop_notices(final_state)
        return self.status()

    async def _stop_notices(self, final_state: str) -> None:
        for task in self._announcements:
            task.cancel()
        await asyncio.gather(*self._announcements, return_exceptions=True)
        if not self._final_recorded:
            # A new activity id: the interrupted attempt may still be pending under the old.
            await asyncio.shield(asyncio.ensure_future(
                self._record_final(final_state, activity_id="record-final-after-cancel")))
        step = self._steps.get("notify")
        if step is not None and step.state in (STEP_PENDING, STEP_RUNNING):
            step.state = STEP_CANCELLED
            step.detail = f"cancelled after the job ended {final_state}"

    # --- steps ----------------------------------------------------------------------------

    async def _probe_source(self, inp: VideoPipelineInput) -> ProbeResult | None:
        step = self._steps["probe"]
        step.state = STEP_RUNNING
        try:
            probe = await workflow.execute_activity(
                "video.probe", ProbeInput(inp.video_id, inp.source_key), activity_id="probe",
                task_queue=inp.queue_pipeline, result_type=ProbeResult, cancellation_type=WAIT,
                **policies.activity_options(policies.PROBE_VIDEO))
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise asyncio.CancelledError() from None
            step.state = STEP_FAILED
            step.last_error = self._error = failure_message(err)
            self._errors["probe"] = self._error
            return None
        step.state = STEP_DONE
        self._probe = probe
        await self._record(activity_id="record-probe", metadata=probe)
        return probe

    async def _rendition(self, height: int, probe: ProbeResult) -> None:
        inp = self._require_input()
        step = self._steps[rendition_step(height)]
        step.state = STEP_RUNNING
        try:
            result = await workflow.execute_activity(
                "video.transcode_rendition",
                RenditionInput(inp.video_id, inp.source_key, height, probe.has_audio,
                               probe.duration),
                activity_id=step.name, task_queue=inp.queue_media,
                result_type=RenditionResult, cancellation_type=WAIT,
                **policies.activity_options(policies.TRANSCODE_RENDITION))
        except ActivityError as err:
            self._branch_failed(step, err)
            return
        self._renditions[height] = result
        step.state = STEP_DONE
        step.percent = 100.0

    async def _make_poster(self, probe: ProbeResult) -> None:
        inp = self._require_input()
        step = self._steps["poster"]
        step.state = STEP_RUNNING
        try:
            self._poster = await workflow.execute_activity(
                "video.extract_poster",
                PosterInput(inp.video_id, inp.source_key, round(probe.duration * 0.1, 3)),
                activity_id="poster", task_queue=inp.queue_media, result_type=PosterResult,
                cancellation_type=WAIT, **policies.activity_options(policies.EXTRACT_POSTER))
        except ActivityError as err:
            self._branch_failed(step, err)
            return
        step.state = STEP_DONE

    async def _make_captions(self, probe: ProbeResult) -> None:
        inp = self._require_input()
        steps = [self._steps[name] for name in CAPTIONS_STEPS]
        if not inp.captions or not probe.has_audio:
            for step in steps:
                step.state = STEP_SKIPPED
                step.detail = "not requested" if not inp.captions else "no audio track"
            self._captions_state = CAPTIONS_DISABLED if not inp.captions else CAPTIONS_SKIPPED
            return
        steps[0].state = STEP_RUNNING
        try:
            result = await workflow.execute_child_workflow(
                "CaptionsWorkflow",
                CaptionsInput(inp.video_id, inp.source_key, inp.language, inp.queue_pipeline,
                              inp.queue_captions, inp.captions_max_attempts),
                id=captions_workflow_id(inp.video_id), task_queue=inp.queue_pipeline,
                result_type=CaptionsResult,
                cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                execution_timeout=timedelta(days=2))
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                for step in steps:
                    if step.state in (STEP_PENDING, STEP_RUNNING):
                        step.state = STEP_CANCELLED
                return
            for step in steps:
                if step.state in (STEP_PENDING, STEP_RUNNING):
                    step.state = STEP_FAILED
                    step.last_error = failure_message(err)
            self._captions_state = CAPTIONS_FAILED
            self._errors["captions"] = failure_message(err)
            return
        self._captions = result
        self._captions_state = result.state
        if result.state == CAPTIONS_AVAILABLE and workflow.patched("captions-available-event"):
            self._announcements.append(asyncio.create_task(self._announce_captions(result)))
        by_name = {s.name: s for s in result.steps}
        for step in steps:
            child = by_name.get(step.name)
            if child is not None:
                step.state, step.last_error = child.state, child.last_error
        if result.state != CAPTIONS_AVAILABLE:
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
            await workflow.execute_activity(
                "webhooks.publish_event", event, activity_id="announce-captions",
                task_queue=inp.queue_pipeline,
                **policies.activity_options(policies.NOTIFY_OWNER))
        except ActivityError as err:
            workflow.logger.warning("captions-available event not delivered: %s",
                                    failure_message(err))

    def _branch_failed(self, step: StepState, err: ActivityError) -> None:
        if is_cancelled_exception(err):
            step.state = STEP_CANCELLED
            return
        step.state = STEP_FAILED
        step.last_error = failure_message(err)
        self._errors[step.name] = step.last_error

    # --- ending ---------------------------------------------------------------------------

    def _final_state(self, heights: list[int]) -> str:
        if not self._renditions:
            self._error = "no rendition could be made: " + "; ".join(
                f"{name}: {msg}" for name, msg in self._errors.items()) if self._errors else (
                "no rendition could be made")
            return JOB_FAILED
        if self._errors:
            self._error = "; ".join(f"{name}: {msg}" for name, msg in self._errors.items())
            return JOB_READY_WITH_ERRORS
        return JOB_READY

    async def _record_final(self, state: str, activity_id: str = "record-final") -> None:
        await self._record(
            activity_id=activity_id, status=state,
            renditions=[self._renditions[h] for h in sorted(self._renditions, reverse=True)],
            poster_key=self._poster.key if self._poster else None,
            captions_state=self._captions_state if self._captions_state != CAPTIONS_PENDING
            else None,
            errors=dict(self._errors) or None)
        self._final_recorded = True

    async def _finish(self, state: str) -> None:
        inp = self._require_input()
        self._set_state(state)
        await self._record_final(state)
        step = self._steps.setdefault("notify", StepState(name="notify"))
        step.state = STEP_RUNNING
        payload = {
            "job_id": self._job_id, "error": self._error,
            "captions_state": self._captions_state,
            "renditions": [rendition_name(h) for h in sorted(self._renditions, reverse=True)],
        }
        try:
            await workflow.execute_activity(
                "video.notify_owner",
                NotifyOwnerInput(inp.video_id, inp.owner_id, state, payload, inp.callback_url),
                activity_id="notify", task_queue=inp.queue_pipeline,
                **policies.activity_options(policies.NOTIFY_OWNER))
        except ActivityError as err:
            # The job's outcome is already recorded; a notice that could not be delivered
            # after a day of retries, or was cancelled, is reported on its step, not turned
            # into a failed or cancelled job.
            if is_cancelled_exception(err):
                step.state = STEP_CANCELLED
                step.detail = f"cancelled after the job ended {state}"
            else:
                step.state = STEP_FAILED
                step.last_error = failure_message(err)
        else:
            step.state = STEP_DONE
        for other in self._steps.values():
            if other.state == STEP_PENDING:
                other.state = STEP_SKIPPED if state != JOB_CANCELLED else STEP_CANCELLED

    async def _record(self, *, activity_id: str, **values) -> None:
        inp = self._require_input()
        await workflow.execute_activity(
            "video.record", RecordVideoInput(inp.video_id, inp.owner_id, **values),
            activity_id=activity_id, task_queue=inp.queue_pipeline,
            **policies.activity_options(policies.RECORD_VIDEO))

    def _set_state(self, state: str) -> None:
        self._state = state
        workflow.upsert_search_attributes([SPOOL_KIND.value_set("video"),
                                           SPOOL_STATUS.value_set(state)])

    def _require_input(self) -> VideoPipelineInput:
        if self._inp is None:  # pragma: no cover - run() sets it first
            raise ApplicationError("workflow input missing")
        return self._inp
