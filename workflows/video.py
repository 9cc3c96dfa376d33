"""VideoPipelineWorkflow: probe (after fetching the source, for a job handed a source_url),
then renditions ∥ poster ∥ captions (child), then record and notify the owner once.

The renditions are made from time chunks by the job's delivery (workflows/delivery.py); what
the job knows meanwhile is one state (workflows/video_state.py).

Branches are isolated (docs/ARCHITECTURE.md rule 5): a failed rendition, poster or captions
branch is recorded in the status and the others carry on. The job ends ready,
ready_with_errors, failed (invalid upload or no rendition at all) or cancelled; the owner is
told once in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.workflow import ChildWorkflowCancellationType

with workflow.unsafe.imports_passed_through():
    import workflows.patches as patches
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.video import (
        EncodeActivities,
        FetchActivities,
        ProbeActivities,
        RecordActivities,
    )
    from activities.webhooks import WebhookActivities
    from spool.models import (
        CaptionsInput,
        CaptionsResult,
        CaptionsState,
        FetchSourceInput,
        FetchSourceResult,
        JobState,
        NotifyOwnerInput,
        PosterInput,
        ProbeInput,
        ProbeResult,
        PublishEventInput,
        RecordVideoInput,
        StepStatus,
        VideoPipelineInput,
        VideoStatus,
        captions_workflow_id,
        plan_rendition_heights,
        rendition_name,
        run_text,
    )
    from spool.models.failures import failure_message
    from spool.models.search_attributes import SPOOL_KIND, SPOOL_STATUS
    from workflows.delivery import JOINING_STEPS, Delivery, encoding_steps, step_shares
    from workflows.steps import (
        Cancelled,
        Done,
        Failed,
        JobQueues,
        QueueKind,
        Step,
        StepBook,
        every_branch,
    )
    from workflows.video_state import VideoJobState, cancelled_after, job_outcome, rung_side

from workflows.captions import CAPTIONS_STEPS, CaptionsWorkflow

# The steps, named as in the status and the saved histories (docs/ARCHITECTURE.md, step table).
FETCH_SOURCE = Step(
    "fetch_source", FetchActivities.fetch_source, policies.FETCH_SOURCE, QueueKind.PIPELINE
)
PROBE = Step("probe", ProbeActivities.probe, policies.PROBE, QueueKind.PIPELINE)
POSTER = Step("poster", EncodeActivities.extract_poster, policies.POSTER, QueueKind.MEDIA)
RECORD = Step("record", RecordActivities.record, policies.RECORD, QueueKind.PIPELINE)
NOTIFY = Step("notify", RecordActivities.notify_owner, policies.NOTIFY, QueueKind.PIPELINE)
ANNOUNCE_CAPTIONS = Step(
    "announce-captions",
    WebhookActivities.publish_event,
    policies.ANNOUNCE_CAPTIONS,
    QueueKind.PIPELINE,
)

ANNOUNCE_PLAYABLE = Step(
    "announce-playable",
    WebhookActivities.publish_event,
    policies.ANNOUNCE_PLAYABLE,
    QueueKind.PIPELINE,
)
# The longest the captions of a job that plays early wait for its first pictures: those take
# seconds; a first chunk retried for longer must not hold the captions back.
CAPTIONS_WAIT_LIMIT = timedelta(seconds=60)


def job_queues(inp: VideoPipelineInput) -> JobQueues:
    """The queues the job's input names (the starter copies them from its settings)."""
    return JobQueues(
        pipeline=inp.queue_pipeline, media=inp.queue_media, captions=inp.queue_captions
    )


def first_steps(inp: VideoPipelineInput) -> list[str]:
    """A job handed over as a URL fetches it first; an upload (every older history) probes."""
    return [FETCH_SOURCE.name, PROBE.name] if inp.source_url else [PROBE.name]


@workflow.defn(name="VideoPipelineWorkflow")
class VideoPipelineWorkflow:
    @workflow.init
    def __init__(self, inp: VideoPipelineInput) -> None:
        self._job = VideoJobState(
            inp=inp,
            job_id=workflow.info().workflow_id,
            steps=StepBook(first_steps(inp), queues=job_queues(inp)),
            captions_state=CaptionsState.PENDING if inp.captions else CaptionsState.DISABLED,
        )
        self._steps = self._job.steps
        self._steps.on_change = self._show_details

    @workflow.query(name="status")
    def status(self) -> VideoStatus:
        return self._job.status(step_shares(self._job.delivery))

    @workflow.run
    async def run(self, inp: VideoPipelineInput) -> VideoStatus:
        self._set_state(JobState.PROCESSING)
        try:
            await self._record(RECORD.at("start"), status=JobState.PROCESSING)
            state, error = await self._process(inp)
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        await self._end(state, error)
        return self.status()

    async def _process(self, inp: VideoPipelineInput) -> tuple[JobState, str | None]:
        """[fetch_source →] probe ─┬─ renditions ∥ poster ∥ captions: the outcome once every
        branch ended."""
        fetched = await self._fetch_source(inp) if inp.source_url else None
        if isinstance(fetched, str):
            return JobState.FAILED, fetched
        probing = ProbeInput(inp.video_id, inp.source_key)
        match await self._steps.run(PROBE, probing, summary=f"probe {inp.source_key}"):
            case Cancelled():
                raise asyncio.CancelledError()
            case Failed(error):
                if fetched is not None:  # say where the body that is not a video came from
                    error = f"the file fetched from {fetched.shown_url}: {error}"
                self._job.errors[PROBE.name] = error
                return JobState.FAILED, error
            case Done(probe):
                self._job.probe = probe
        await self._record(RECORD.at("probe"), metadata=probe)
        await self._branches(probe, plan_rendition_heights(rung_side(probe), inp.renditions))
        return job_outcome(bool(self._job.renditions), self._job.errors)

    async def _fetch_source(self, inp: VideoPipelineInput) -> FetchSourceResult | str:
        """The URL's body stored under the source key, or why it could not be (an error)."""
        assert inp.source_url is not None
        fetch = FetchSourceInput(inp.video_id, inp.source_url, inp.source_key)
        summary = f"fetch the source from {run_text.url_origin(inp.source_url)}"
        match await self._steps.run(FETCH_SOURCE, fetch, summary=summary):
            case Cancelled():
                raise asyncio.CancelledError()
            case Failed(error):
                self._job.errors[FETCH_SOURCE.name] = error
                self._steps.skip([PROBE.name], "the source could not be fetched")
                return error
            case Done(fetched):
                return fetched

    async def _branches(self, probe: ProbeResult, heights: list[int]) -> None:
        """plan ─┬─ renditions (delivery) ∥ poster ∥ captions."""
        if not heights:  # none of the requested renditions fits the source: nothing to plan
            self._steps.add(POSTER.name, *CAPTIONS_STEPS, NOTIFY.name)
            await every_branch(self._make_poster(probe), self._make_captions(probe))
            return
        delivery = Delivery(self._job, probe)
        plan = await delivery.plan(heights)
        if plan is None:
            return
        self._steps.add(
            *encoding_steps(plan), POSTER.name, *CAPTIONS_STEPS, *JOINING_STEPS, NOTIFY.name
        )
        # A job that plays early gives its first chunk the hosts: Whisper (at the worker's
        # own CPU priority, above the encodes') starts once the first pictures are out.
        first_first = plan.live is not None and workflow.patched(patches.PLAYABLE_FIRST)
        await every_branch(
            delivery.deliver(plan, self._playable, first_first=first_first),
            self._make_poster(probe),
            self._make_captions(probe, after=delivery.first_out if first_first else None),
        )

    def _playable(self) -> None:
        """The live playlists' first publish: the video plays from now. Recorded, and
        announced (``video.playable``) before the owner hears the job has ended."""
        job, inp = self._job, self._job.inp
        at = workflow.now().isoformat()
        job.delivery.playable_at = at
        self._show_details()
        event = PublishEventInput(
            event_id=f"playable:{inp.video_id}",
            event_type="video.playable",
            payload={"video_id": inp.video_id, "job_id": job.job_id, "playable_at": at},
            callback_url=inp.callback_url,
        )
        job.announcements += [
            asyncio.create_task(self._record(RECORD.at("playable"), playable_at=at)),
            asyncio.create_task(self._announce(ANNOUNCE_PLAYABLE, event)),
        ]

    # --- poster and captions --------------------------------------------------------------

    async def _make_poster(self, probe: ProbeResult) -> None:
        inp = self._job.inp
        at = round(probe.duration * 0.1, 3)
        made = await self._steps.run(
            POSTER, PosterInput(inp.video_id, inp.source_key, at), summary=f"poster at {at:g} s"
        )
        match made:
            case Done(poster):
                self._job.poster = poster
            case Failed(error):
                self._job.errors[POSTER.name] = error

    async def _make_captions(
        self, probe: ProbeResult, after: Callable[[], bool] | None = None
    ) -> None:
        """The captions child; ``after``: started once that holds, or after
        CAPTIONS_WAIT_LIMIT whatever it says."""
        inp, job = self._job.inp, self._job
        if not inp.captions or not probe.has_audio:
            self._steps.skip(
                CAPTIONS_STEPS, "not requested" if not inp.captions else "no audio track"
            )
            job.captions_state = (
                CaptionsState.DISABLED if not inp.captions else CaptionsState.SKIPPED
            )
            return
        if after is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(
                    after,
                    timeout=CAPTIONS_WAIT_LIMIT,
                    timeout_summary="captions wait for the first pictures",
                )
        child = CaptionsInput(
            inp.video_id,
            inp.source_key,
            inp.language,
            inp.queue_pipeline,
            inp.queue_captions,
            inp.captions_max_attempts,
        )
        made = await self._steps.track(
            CAPTIONS_STEPS,
            workflow.execute_child_workflow(
                CaptionsWorkflow.run,
                child,
                id=captions_workflow_id(inp.video_id),
                task_queue=inp.queue_pipeline,
                cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                execution_timeout=timedelta(days=2),
                static_summary=f"captions of video {inp.video_id}{run_text.SEP}{inp.language}",
                static_details=run_text.captions_details(child),
            ),
        )
        match made:
            case Cancelled():
                return
            case Failed(error):
                job.captions_state = CaptionsState.FAILED
                job.errors["captions"] = error
            case Done(result):
                self._take_captions(result)

    def _take_captions(self, result: CaptionsResult) -> None:
        job = self._job
        job.captions, job.captions_state = result, result.state
        if result.state in (CaptionsState.AVAILABLE, CaptionsState.NONE):
            job.announcements.append(asyncio.create_task(self._announce_captions(result)))
        self._steps.adopt(result.steps)
        if result.state not in (CaptionsState.AVAILABLE, CaptionsState.NONE):
            job.errors["captions"] = result.error or "captions failed"

    async def _announce_captions(self, result: CaptionsResult) -> None:
        """``video.captions_available``, or ``video.captions_none`` when the audio held no
        speech: either way the owner learns what the captions step found."""
        inp = self._job.inp
        found = "none" if result.state == CaptionsState.NONE else "available"
        event = PublishEventInput(
            event_id=f"captions-{found}:{inp.video_id}",
            event_type=f"video.captions_{found}",
            payload={
                "video_id": inp.video_id,
                "job_id": self._job.job_id,
                "captions_state": str(result.state),
                "language": result.language,
                "segments": result.segment_count,
            },
            callback_url=inp.callback_url,
        )
        await self._announce(ANNOUNCE_CAPTIONS, event)

    async def _announce(self, step: Step[PublishEventInput, int], event: PublishEventInput) -> None:
        """An event to the owner's webhooks; one that could not be delivered after its
        retries is logged, never the job's failure."""
        try:
            await self._steps.execute(step, event, summary=f"announce {event.event_type}")
        except ActivityError as err:
            workflow.logger.warning("%s not delivered: %s", event.event_type, failure_message(err))

    # --- ending ---------------------------------------------------------------------------
    # A cancel is handled here only. Before the outcome is decided it stops every branch,
    # waits until its ffmpeg/Whisper has really stopped, and ends the job cancelled; after,
    # the job keeps its outcome and the cancel only stops the notices still being delivered.

    async def _end_cancelled(self) -> None:
        self._steps.end_unfinished(StepStatus.CANCELLED)
        if self._job.captions_state == CaptionsState.PENDING:
            self._job.captions_state = CaptionsState.CANCELLED
        # Recording and announcing the cancel must not itself be cancelled.
        await asyncio.shield(asyncio.ensure_future(self._finish(JobState.CANCELLED, None)))

    async def _end(self, state: JobState, error: str | None) -> None:
        try:
            await self._finish(state, error)
            await asyncio.gather(*self._job.announcements)
        except (asyncio.CancelledError, ActivityError) as err:
            if not is_cancelled_exception(err):
                raise
            await self._stop_notices(state)

    async def _stop_notices(self, state: JobState) -> None:
        announcements = self._job.announcements
        for task in announcements:
            task.cancel()
        await asyncio.gather(*announcements, return_exceptions=True)
        if not self._job.final_recorded:
            # A new activity id: the interrupted attempt may still be pending under the old.
            await asyncio.shield(
                asyncio.ensure_future(self._record_final(state, RECORD.at("final-after-cancel")))
            )
        self._steps.end_unfinished(
            StepStatus.CANCELLED, names=[NOTIFY.name], detail=cancelled_after(state)
        )

    async def _finish(self, state: JobState, error: str | None) -> None:
        """Record the outcome, then tell the owner once."""
        job = self._job
        job.error = error if error is not None else job.error
        self._set_state(state)
        await self._record_final(state, RECORD.at("final"))
        # In order per video: "captions available" is delivered (or given up on; it never
        # raises) before "video ready" goes to the same receivers. The outcome is already
        # recorded, so only the notice waits.
        await asyncio.gather(*job.announcements)
        payload = {
            "job_id": job.job_id,
            "error": job.error,
            "captions_state": job.captions_state,
            "renditions": [rendition_name(h) for h in sorted(job.renditions, reverse=True)],
        }
        # The outcome is recorded; a notice that could not be delivered after a day of
        # retries, or was cancelled, is reported on its step, not turned into a failed or
        # cancelled job.
        await self._steps.run(
            NOTIFY,
            NotifyOwnerInput(
                job.inp.video_id, job.inp.owner_id, state, payload, job.inp.callback_url
            ),
            summary=f"notify owner {job.inp.owner_id}: {state}",
        )
        self._steps.note_cancelled(NOTIFY.name, cancelled_after(state))
        self._steps.end_unfinished(
            StepStatus.CANCELLED if state == JobState.CANCELLED else StepStatus.SKIPPED
        )

    async def _record_final(self, state: JobState, step: Step[RecordVideoInput, None]) -> None:
        job = self._job
        await self._record(
            step,
            status=state,
            renditions=job.renditions_by_height(),
            poster_key=job.poster.key if job.poster else None,
            captions_state=job.captions_state
            if job.captions_state != CaptionsState.PENDING
            else None,
            errors=dict(job.errors) or None,
            hls_key=job.delivery.hls.key if job.delivery.hls else None,
            storyboard_key=job.delivery.storyboard.vtt_key if job.delivery.storyboard else None,
        )
        job.final_recorded = True

    async def _record(self, step: Step[RecordVideoInput, None], **values: Any) -> None:
        inp = self._job.inp
        recorded = RecordVideoInput(inp.video_id, inp.owner_id, **values)
        summary = step.name if recorded.status is None else f"{step.name}: {recorded.status}"
        await self._steps.execute(step, recorded, summary=summary)

    def _set_state(self, state: JobState) -> None:
        self._job.state = state
        workflow.upsert_search_attributes(
            [SPOOL_KIND.value_set("video"), SPOOL_STATUS.value_set(str(state))]
        )
        self._show_details()

    def _show_details(self) -> None:
        """The UI's current details: the status query's facts, kept as they change (a run
        started without a summary shows them from its first task)."""
        workflow.set_current_details(run_text.video_job_details(self.status()))
