"""BlogPublishWorkflow: one durable publish, three independent consumers.

Starting this workflow is the one durable write. index_post, record_post_for_author and
notify_followers then run concurrently, each under its own retry policy: an index outage makes
index_post retry for as long as its policy allows while the count and the notifications each
happen once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # Not `from workflows import policies`: a submodule named in a from-list of this
    # workflow's own package escapes the pass-through and is executed again for every run.
    import workflows.policies as policies
    from activities.blog import BlogActivities
    from spool.models import (
        INVALID_POST,
        BlogPublishInput,
        BlogPublishStatus,
        InvalidPostError,
        JobState,
        Post,
        blog_workflow_id,
        run_text,
        validate_post,
    )
    from spool.models.search_attributes import SPOOL_KIND, SPOOL_STATUS
    from workflows.status_memo import StatusMemo
    from workflows.steps import Done, Failed, QueueKind, Step, StepBook

# The steps, named as in the status and the saved histories (docs/ARCHITECTURE.md, step table).
# They run on the workflow's own queue: a blog job names no queues.
INDEX_POST = Step("index_post", BlogActivities.index_post, policies.INDEX_POST, QueueKind.PIPELINE)
RECORD_POST_FOR_AUTHOR = Step(
    "record_post_for_author",
    BlogActivities.record_post_for_author,
    policies.RECORD_POST_FOR_AUTHOR,
    QueueKind.PIPELINE,
)
NOTIFY_FOLLOWERS = Step(
    "notify_followers",
    BlogActivities.notify_followers,
    policies.NOTIFY_FOLLOWERS,
    QueueKind.PIPELINE,
)
BLOG_STEPS = (INDEX_POST, RECORD_POST_FOR_AUTHOR, NOTIFY_FOLLOWERS)
KIND = "blog"


@workflow.defn(name="BlogPublishWorkflow")
class BlogPublishWorkflow:
    def __init__(self) -> None:
        self._job_id = ""
        self._post_id = ""
        self._version = 0
        self._state = JobState.PROCESSING
        self._error: str | None = None
        self._post: Post | None = None
        self._steps = StepBook(step.name for step in BLOG_STEPS)
        self._steps.on_change = self._show_details
        # What the status query answers, in the run's memo for the service to read.
        self._memo = StatusMemo(self.status)

    @workflow.run
    async def run(self, inp: BlogPublishInput) -> BlogPublishStatus:
        return await self._memo.run(self._run(inp))

    async def _run(self, inp: BlogPublishInput) -> BlogPublishStatus:
        post = inp.post
        self._job_id = workflow.info().workflow_id
        self._post_id, self._version = post.post_id, post.version
        self._post = post
        self._start_processing()
        self._show_details()
        try:
            validate_post(post)
        except InvalidPostError as exc:
            # Reaches here only when started without Spool's client (e.g. the temporal CLI).
            self._error = str(exc)
            self._set_state(JobState.FAILED)
            # The UI's failure banner shows this message alone: it names the post and field.
            raise ApplicationError(
                f"invalid post {run_text.one_line(post.post_id, 40)} v{post.version}, "
                f"refused before any step: {exc}",
                {"field": exc.field},
                type=INVALID_POST,
                non_retryable=True,
            ) from None

        index = INDEX_POST.with_policy(policies.index_post_policy(inp.index_retry_seconds))
        published = await asyncio.gather(
            *(
                self._publish_step(step, post)
                for step in (index, RECORD_POST_FOR_AUTHOR, NOTIFY_FOLLOWERS)
            )
        )
        self._set_state(JobState.READY if all(published) else JobState.READY_WITH_ERRORS)
        return self.status()

    async def _publish_step(self, step: Step[Post, Any], post: Post) -> bool:
        """Run one consumer of the publish; False when it did not complete. A cancelled step
        returns too: the gather then ends the job cancelled once every step has stopped."""
        summary = (
            f"{step.name}{run_text.SEP}post {post.post_id} v{post.version} by {post.author_id}"
        )
        outcome = await self._steps.run(step, post, progress=True, summary=summary)
        if isinstance(outcome, Failed) and self._error is None:
            # The job's error names the first step that failed.
            self._error = f"{step.name}: {outcome.error}"
        return isinstance(outcome, Done)

    def _start_processing(self) -> None:
        """PROCESSING, and the search attributes that say so unless the start set them.

        Runs that Spool starts carry SpoolKind="blog" and SpoolStatus="processing" from their
        start (spool/service/jobs.py). What the start carried is in the history's first event,
        so the choice replays the same; a run started without them (the temporal CLI, any
        SDK) still gets both."""
        started = workflow.info().typed_search_attributes
        if started.get(SPOOL_KIND) == KIND and started.get(SPOOL_STATUS) == str(
            JobState.PROCESSING
        ):
            self._state = JobState.PROCESSING
            return
        self._set_state(JobState.PROCESSING)

    def _set_state(self, state: JobState) -> None:
        self._state = state
        workflow.upsert_search_attributes(
            [SPOOL_KIND.value_set(KIND), SPOOL_STATUS.value_set(str(state))]
        )
        self._show_details()

    def _show_details(self) -> None:
        """The UI's current details: the status query's facts, kept as they change (a run
        started without a summary, by the temporal CLI, shows them from its first task)."""
        workflow.set_current_details(run_text.post_job_details(self.status(), self._post))
        self._memo.changed()

    @workflow.query(name="status")
    def status(self) -> BlogPublishStatus:
        return BlogPublishStatus(
            job_id=self._job_id or blog_workflow_id(self._post_id, self._version),
            post_id=self._post_id,
            version=self._version,
            state=self._state,
            steps=self._steps.states(),
            error=self._error,
        )
