"""BlogPublishWorkflow: one durable publish, three independent consumers.

Starting this workflow is the one durable write. index_post, record_post_for_author and
notify_followers then run concurrently, each under its own retry policy: an index outage makes
index_post retry for as long as its policy allows while the count and the notifications each
happen once.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from spool.models import (
        BLOG_STEPS,
        INVALID_POST,
        JOB_FAILED,
        JOB_PROCESSING,
        JOB_READY,
        JOB_READY_WITH_ERRORS,
        STEP_DONE,
        STEP_FAILED,
        STEP_RUNNING,
        BlogPublishInput,
        BlogPublishStatus,
        InvalidPostError,
        StepState,
        blog_workflow_id,
        validate_post,
    )
    from workflows import policies
    from workflows.errors import failure_message
    from workflows.search_attributes import SPOOL_KIND, SPOOL_STATUS



@workflow.defn(name="BlogPublishWorkflow")
class BlogPublishWorkflow:
    def __init__(self) -> None:
        self._job_id = ""
        self._post_id = ""
        self._version = 0
        self._state = JOB_PROCESSING
        self._error: str | None = None
        self._steps = {name: StepState(name=name) for name in BLOG_STEPS}

    @workflow.run
    async def run(self, inp: BlogPublishInput) -> BlogPublishStatus:
        post = inp.post
        self._job_id = workflow.info().workflow_id
        self._post_id, self._version = post.post_id, post.version
        self._set_state(JOB_PROCESSING)
        try:
            validate_post(post)
        except InvalidPostError as exc:
            # Reaches here only when started without Spool's client (e.g. the temporal CLI).
            self._error = str(exc)
            self._set_state(JOB_FAILED)
            raise ApplicationError(str(exc), {"field": exc.field}, type=INVALID_POST,
                                   non_retryable=True) from None

        step_policies = {
            "index_post": policies.index_post_policy(inp.index_retry_seconds),
            "record_post_for_author": policies.RECORD_POST_FOR_AUTHOR,
            "notify_followers": policies.NOTIFY_FOLLOWERS,
        }
        await asyncio.gather(
            *(self._run_step(name, step_policies[name], inp) for name in BLOG_STEPS)
        )
        failed = [s for s in self._steps.values() if s.state == STEP_FAILED]
        self._set_state(JOB_READY_WITH_ERRORS if failed else JOB_READY)
        return self.status()

    async def _run_step(self, name: str, policy: policies.StepPolicy,
                        inp: BlogPublishInput) -> None:
        step = self._steps[name]
        step.state = STEP_RUNNING
        try:
            await workflow.execute_activity(
                name, inp.post, activity_id=name, **policies.activity_options(policy)
            )
        except ActivityError as err:
            step.state = STEP_FAILED
            step.last_error = failure_message(err)
            if self._error is None:
                self._error = f"{name}: {step.last_error}"
            return
        step.state = STEP_DONE
        step.percent = 100.0

    def _set_state(self, state: str) -> None:
        self._state = state
        workflow.upsert_search_attributes([SPOOL_KIND.value_set("blog"),
                                           SPOOL_STATUS.value_set(state)])

    @workflow.query(name="status")
    def status(self) -> BlogPublishStatus:
        return BlogPublishStatus(
            job_id=self._job_id or blog_workflow_id(self._post_id, self._version),
            post_id=self._post_id,
            version=self._version,
            state=self._state,
            steps=list(self._steps.values()),
            error=self._error,
        )
