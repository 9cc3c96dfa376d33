"""VideoDeletionWorkflow: one durable deletion per video (id ``delete-video-{video_id}``).

mark-deleting → stop-job → delete-objects → delete-records [→ timer → the same again] →
announce-deleted. The video is recorded deleted first (the API answers 404 from then on);
its job is cancelled and waited for until it has ended, heavy steps included, so nothing of
it writes afterwards; then every object under the video's prefix and its rows go. When the
job had to be stopped, the objects and rows are looked for again after a while: a worker cut
off from the server may still finish a write it began (docs/storage.md, deleting a video).
Only then is ``video.deleted`` announced.

A video's retention time (``delete_at``) is the same job started at upload, waiting on a
durable timer; a delete asked for meanwhile is a signal that ends the wait.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.video.deletion import DeletionActivities
    from activities.webhooks import WebhookActivities
    from spool.models import (
        DELETE_NOW_SIGNAL,
        DeleteObjectsInput,
        DeleteObjectsResult,
        DeleteRecordsInput,
        JobState,
        MarkDeletingInput,
        PublishEventInput,
        StopJobInput,
        StopJobResult,
        VideoDeletionInput,
        VideoDeletionStatus,
        run_text,
    )
    from spool.models.search_attributes import SPOOL_KIND, SPOOL_STATUS
    from workflows.status_memo import StatusMemo
    from workflows.steps import Done, JobQueues, QueueKind, Step, StepBook

MARK_DELETING = Step(
    "mark-deleting", DeletionActivities.mark_deleting, policies.MARK_DELETING, QueueKind.PIPELINE
)
STOP_JOB = Step("stop-job", DeletionActivities.stop_job, policies.STOP_JOB, QueueKind.PIPELINE)
DELETE_OBJECTS = Step(
    "delete-objects", DeletionActivities.delete_objects, policies.DELETE_OBJECTS, QueueKind.PIPELINE
)
DELETE_RECORDS = Step(
    "delete-records", DeletionActivities.delete_records, policies.DELETE_RECORDS, QueueKind.PIPELINE
)
ANNOUNCE_DELETED = Step(
    "announce-deleted",
    WebhookActivities.publish_event,
    policies.ANNOUNCE_DELETED,
    QueueKind.PIPELINE,
)
DELETION_STEPS = (MARK_DELETING, STOP_JOB, DELETE_OBJECTS, DELETE_RECORDS, ANNOUNCE_DELETED)
KIND = "video-deletion"
STOPPED = ("cancelled", "terminated")


@workflow.defn(name="VideoDeletionWorkflow")
class VideoDeletionWorkflow:
    @workflow.init
    def __init__(self, inp: VideoDeletionInput) -> None:
        self._inp = inp
        self._now = inp.delete_at is None
        self._reason = inp.reason
        self._state = JobState.PROCESSING
        self._error: str | None = None
        self._deleted = 0
        self._steps = StepBook(
            (step.name for step in DELETION_STEPS), queues=JobQueues(pipeline=inp.queue_pipeline)
        )
        self._steps.on_change = self._show_details
        # What the status query answers, in the run's memo for the service to read.
        self._memo = StatusMemo(self.status)

    @workflow.signal(name=DELETE_NOW_SIGNAL)
    def delete_now(self) -> None:
        """A delete asked for now: a retention time still ahead is not waited for."""
        if not self._now:
            self._now, self._reason = True, "request"
            self._show_details()

    @workflow.query(name="status")
    def status(self) -> VideoDeletionStatus:
        return VideoDeletionStatus(
            job_id=workflow.info().workflow_id,
            video_id=self._inp.video_id,
            state=self._state,
            steps=self._steps.states(),
            reason=self._reason,
            delete_at=None if self._now else self._inp.delete_at,
            objects_deleted=self._deleted,
            error=self._error,
        )

    @workflow.run
    async def run(self, inp: VideoDeletionInput) -> VideoDeletionStatus:
        return await self._memo.run(self._run(inp))

    async def _run(self, inp: VideoDeletionInput) -> VideoDeletionStatus:
        self._set_state(JobState.PROCESSING)
        await self._wait_for_retention(inp)
        video_id = inp.video_id
        await self._step(
            MARK_DELETING, MarkDeletingInput(video_id, workflow.info().workflow_id, self._reason)
        )
        deadline = workflow.now().timestamp() + inp.stop_wait_seconds
        stopped: StopJobResult = await self._step(STOP_JOB, StopJobInput(video_id, deadline))
        await self._purge(DELETE_OBJECTS, DELETE_RECORDS)
        if stopped.outcome in STOPPED and inp.recheck_seconds > 0:
            await workflow.sleep(
                timedelta(seconds=inp.recheck_seconds),
                summary=f"look again for late writes in {inp.recheck_seconds:g} s",
            )
            await self._purge(DELETE_OBJECTS.at("again"), DELETE_RECORDS.at("again"))
        await self._announce(stopped)
        self._set_state(JobState.READY)
        return self.status()

    async def _wait_for_retention(self, inp: VideoDeletionInput) -> None:
        if self._now or inp.delete_at is None:
            return
        seconds = inp.delete_at - workflow.now().timestamp()
        if seconds <= 0:
            self._now = True
            return
        when = run_text.utc_text(inp.delete_at)
        try:
            await workflow.wait_condition(
                lambda: self._now,
                timeout=timedelta(seconds=seconds),
                timeout_summary=f"retention: delete at {when}",
            )
        except TimeoutError:
            self._now = True

    async def _purge(
        self,
        objects: Step[DeleteObjectsInput, DeleteObjectsResult],
        records: Step[DeleteRecordsInput, int],
    ) -> None:
        """Objects first, then rows: a crash between them leaves a record that says what is
        being deleted, never objects without one."""
        video_id = self._inp.video_id
        result: DeleteObjectsResult = await self._step(objects, DeleteObjectsInput(video_id))
        self._deleted += result.deleted
        await self._step(records, DeleteRecordsInput(video_id))

    async def _announce(self, stopped: StopJobResult) -> None:
        video_id = self._inp.video_id
        event = PublishEventInput(
            event_id=f"video-deleted:{video_id}",
            event_type="video.deleted",
            payload={
                "video_id": video_id,
                "job_id": workflow.info().workflow_id,
                "reason": self._reason,
                "objects_deleted": self._deleted,
            },
            callback_url=stopped.callback_url,
            recipients=[stopped.owner_id] if stopped.owner_id else [],
        )
        # Announcing never undoes a deletion: a notice not delivered in a day of retries is
        # reported on its step (and in the error), the video stays deleted.
        outcome = await self._steps.run(
            ANNOUNCE_DELETED, event, summary=f"announce {event.event_type}"
        )
        if not isinstance(outcome, Done):
            self._error = f"{ANNOUNCE_DELETED.name}: not delivered"

    async def _step(self, step: Step[Any, Any], arg: Any) -> Any:
        """Run a step that retries until it succeeds; a non-retryable failure fails the job,
        naming the step, so a repeated delete runs it again."""
        summary = f"{step.name}{run_text.SEP}video {self._inp.video_id}"
        outcome = await self._steps.run(step, arg, summary=summary)
        if isinstance(outcome, Done):
            return outcome.value
        error = getattr(outcome, "error", "cancelled")
        self._error = f"{step.name}: {error}"
        raise ApplicationError(f"deleting video {self._inp.video_id}: {self._error}")

    def _set_state(self, state: JobState) -> None:
        self._state = state
        workflow.upsert_search_attributes(
            [SPOOL_KIND.value_set(KIND), SPOOL_STATUS.value_set(str(state))]
        )
        self._show_details()

    def _show_details(self) -> None:
        """The UI's current details: the status query's facts, kept as they change."""
        workflow.set_current_details(run_text.deletion_job_details(self.status()))
        self._memo.changed()
