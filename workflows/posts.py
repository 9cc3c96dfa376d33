"""PostWorkflow: one workflow per post (id ``post-{post_id}``), the only writer of its state.

Operations arrive as the Update ``apply`` (or, when no worker acknowledged the Update in time,
the signal ``apply`` carrying the same request: docs/posts.md). The validator refuses a bad
operation before it enters history; the handler changes the state and gives it the next
generation. The loop below then writes the newest state's effects, each fenced by its
generation (spool/models/posts.py), so effects of several operations may run side by side and
land in any order: the newest fence wins in the database and in the index alike. A publish is
a child BlogPublishWorkflow (``post-{id}-v{n}``: the index, the count and the notification as
three independent steps); an unpublish, a delete or a schedule writes the state and a
tombstone. A scheduled publish is a durable timer here. The run completes once idle (nothing
scheduled, every effect written) and continues as new when its history grows.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.blog import BlogActivities
    from spool.models import (
        BlogPublishInput,
        OpResult,
        PostEffect,
        PostEntityInput,
        PostEntityState,
        PostFence,
        PostOp,
        PostState,
        blog_workflow_id,
        entity_fence,
    )
    from workflows.post_rules import Refused, check_op
    from workflows.steps import QueueKind, Step

RECORD_POST_STATE = Step(
    "record_post_state",
    BlogActivities.record_post_state,
    policies.RECORD_POST_STATE,
    QueueKind.PIPELINE,
)
RETRACT_POST = Step(
    "retract_post", BlogActivities.retract_post, policies.RETRACT_POST, QueueKind.PIPELINE
)
READ_POST_FENCE = Step(
    "read_post_fence", BlogActivities.read_post_fence, policies.READ_POST_FENCE, QueueKind.PIPELINE
)
# How long a run waits for another operation before it completes; the next one starts a run.
IDLE = timedelta(minutes=10)
# Request ids remembered, so a repeated request (an update retried, then its signal) is one.
REMEMBERED_REQUESTS = 64
POST_WORKFLOW = "PostWorkflow"


@workflow.defn(name=POST_WORKFLOW)
class PostWorkflow:
    def __init__(self) -> None:
        self._s = PostEntityState(post_id="")
        self._ready = False
        self._written = 0  # the newest generation whose effects were started
        self._started_job = 0  # the newest generation whose publishing job has started
        self._recorded_state = 0  # the newest generation whose state the database holds
        self._running: set[asyncio.Task] = set()
        self._changed = False
        self._index_retry: int | None = None
        self._idle_for = IDLE

    @workflow.run
    async def run(self, inp: PostEntityInput) -> PostEntityState:
        self._index_retry = inp.index_retry_seconds
        self._idle_for = timedelta(seconds=inp.idle_seconds) if inp.idle_seconds else IDLE
        if inp.carried is not None:
            self._s, self._written = inp.carried, inp.carried.generation
        else:
            self._s.post_id = inp.post_id
            self._adopt(await READ_POST_FENCE.execute(PostFence(post_id=inp.post_id)))
        self._ready = True
        while not await self._next():
            self._write_newest()
            if workflow.info().is_continue_as_new_suggested() and self._idle():
                workflow.continue_as_new(replace(inp, carried=self._s))
        return self._s

    def _adopt(self, known: PostFence) -> None:
        """A run that starts where the database stands: above its newest fence, in its
        state (a post published before, by this workflow's earlier run or on its own)."""
        generation = max(0, known.fence - entity_fence(0))
        self._s.generation = self._written = generation
        self._s.state = known.state
        if known.version and known.state != PostState.DELETED:
            self._s.version = known.version
        if known.state == PostState.PUBLISHED:
            self._s.job_id = blog_workflow_id(self._s.post_id, known.version)
        self._s.announced = known.announced or known.state == PostState.PUBLISHED

    async def _next(self) -> bool:
        """Wait for an operation or the scheduled time; True once the run should end."""
        self._changed = False
        try:
            await workflow.wait_condition(lambda: self._changed, timeout=self._wait_for())
        except TimeoutError:
            if self._s.state == PostState.SCHEDULED and self._due():
                self._publish_scheduled()
                return False
            if self._idle():
                return True
        return False

    def _wait_for(self) -> timedelta:
        if self._s.state == PostState.SCHEDULED and self._s.publish_at:
            left = datetime.fromisoformat(self._s.publish_at) - workflow.now()
            return max(left, timedelta(0))
        return self._idle_for

    def _due(self) -> bool:
        at = self._s.publish_at
        return at is not None and datetime.fromisoformat(at) <= workflow.now()

    def _idle(self) -> bool:
        return (
            not self._running
            and self._written == self._s.generation
            and self._s.state != PostState.SCHEDULED
            and workflow.all_handlers_finished()
        )

    def _publish_scheduled(self) -> None:
        """The timer fired: published now, once (a reschedule or a cancel after this answers
        that it is too late)."""
        post = self._s.post
        if post is not None and post.published_at is None:
            post = replace(post, published_at=self._s.publish_at)
        self._s.post, self._s.publish_at = post, None
        self._s.job_id = self._child_id()
        self._change(PostState.PUBLISHED)

    def _change(self, state: PostState) -> None:
        self._s.state = state
        self._s.generation += 1
        self._changed = True

    # --- operations -------------------------------------------------------------------------

    @workflow.update(name="apply")
    async def apply(self, op: PostOp) -> OpResult:
        return await self._apply(op)

    async def _apply(self, op: PostOp) -> OpResult:
        """An operation, sent as an Update or (no worker answered in time) as a signal."""
        await workflow.wait_condition(lambda: self._ready)
        remembered = self._remembered(op.request_id)
        if remembered is not None:
            return remembered
        try:
            decision = check_op(self._s, op, workflow.now())
        except Refused as refused:
            raise ApplicationError(refused.message, type=refused.kind, non_retryable=True) from None
        if decision.absorbed:
            return self._remember(op, absorbed=True)
        self._s.post = decision.post if decision.post is not None else self._s.post
        if decision.post is not None:
            self._s.version = decision.post.version
        self._s.publish_at = decision.publish_at
        if decision.state == PostState.PUBLISHED:
            self._s.job_id = self._child_id()
        self._change(decision.state)
        generation = self._s.generation
        # Remembered before anything is awaited: the other copy of this request (its Update
        # kept by the server after the client gave up, and the signal sent instead) may be
        # delivered in this very task, after later operations, and is then this one, not a
        # second operation applied out of order.
        result = self._remember(op, absorbed=False)
        # Answer once the publishing job exists (its id can be read at once), or once the
        # new state is recorded (a read after the answer sees it).
        done = self._job_started if decision.state == PostState.PUBLISHED else self._recorded
        await workflow.wait_condition(
            lambda: done() >= generation or self._s.generation > generation
        )
        return result

    @apply.validator
    def _validate(self, op: PostOp) -> None:
        """Refuse before history; before the run knows the post's state (its first moments)
        only what the operation says of itself is checked, the rest by the handler."""
        if self._remembered(op.request_id) is not None:
            return
        try:
            check_op(self._s if self._ready else None, op, workflow.now())
        except Refused as refused:
            raise ApplicationError(refused.message, type=refused.kind, non_retryable=True) from None

    @workflow.signal(name="apply")
    async def apply_signalled(self, op: PostOp) -> None:
        """The same operation, sent when no worker acknowledged the Update in time: a refusal
        is only logged, as nobody waits for it (the API checked what it could at the door)."""
        try:
            await self._apply(op)
        except ApplicationError as refused:
            workflow.logger.warning("operation %s refused: %s", op.kind, refused.message)

    @workflow.query(name="state")
    def state(self) -> PostEntityState:
        return self._s

    def _remembered(self, request_id: str) -> OpResult | None:
        return next((r for r in self._s.results if r.request_id == request_id), None)

    def _remember(self, op: PostOp, *, absorbed: bool) -> OpResult:
        result = OpResult(
            job_id=self._job_id(op),
            post_id=self._s.post_id,
            state=self._s.state,
            generation=self._s.generation,
            version=self._s.version or None,
            publish_at=self._s.publish_at,
            absorbed=absorbed,
            request_id=op.request_id,
        )
        self._s.results = [*self._s.results, result][-REMEMBERED_REQUESTS:]
        return result

    def _job_id(self, op: PostOp) -> str:
        if self._s.state == PostState.PUBLISHED and self._s.job_id:
            return self._s.job_id
        return workflow.info().workflow_id

    def _child_id(self) -> str:
        """The publishing job of this version; another id while a job of that id still runs
        (the same version published again after an unpublish)."""
        version = self._s.version or 1
        plain = blog_workflow_id(self._s.post_id, version)
        if plain not in self._s.children:
            return plain
        return f"{plain}-g{self._s.generation + 1}"

    # --- effects ----------------------------------------------------------------------------

    def _write_newest(self) -> None:
        """Start writing the newest state's effects; older ones still running are left to
        land: their fences are lower."""
        if self._written == self._s.generation:
            return
        self._written = self._s.generation
        fence = entity_fence(self._s.generation)
        if self._s.state == PostState.PUBLISHED:
            work = self._publish(fence, self._s.job_id or self._child_id())
        else:
            work = self._retract(fence)
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda _: setattr(self, "_changed", True))

    async def _publish(self, fence: int, child_id: str) -> None:
        assert self._s.post is not None
        generation = self._s.generation
        post = replace(self._s.post, fence=fence)
        if self._s.announced:
            # Followers are told at the post's first publish only (docs/posts.md,
            # "Invariants", the third): a later version's job is given no one to tell, not
            # the graph as it is now.
            post = replace(post, followers=[])
        self._s.announced = True
        inp = BlogPublishInput(post=post, index_retry_seconds=self._index_retry)
        self._s.children = [*self._s.children, child_id]
        try:
            try:
                handle = await self._start_child(inp, child_id)
            except WorkflowAlreadyStartedError:
                # Started by other means (a publish started on its own): another id.
                handle = await self._start_child(inp, f"{child_id}-g{generation}")
            finally:
                self._started_job = max(self._started_job, generation)
            await handle
        except Exception as err:  # noqa: BLE001 - the job's own status says why
            workflow.logger.warning("publishing job %s ended: %s", child_id, err)
        finally:
            self._s.children = [c for c in self._s.children if c != child_id]

    async def _record(self, effect: PostEffect, generation: int) -> None:
        try:
            await RECORD_POST_STATE.execute(effect)
        finally:
            self._recorded_state = max(self._recorded_state, generation)

    async def _start_child(self, inp: BlogPublishInput, child_id: str):
        return await workflow.start_child_workflow(
            "BlogPublishWorkflow",
            inp,
            id=child_id,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )

    def _job_started(self) -> int:
        return self._started_job

    def _recorded(self) -> int:
        return self._recorded_state

    async def _retract(self, fence: int) -> None:
        generation = self._s.generation
        effect = PostEffect(
            post_id=self._s.post_id,
            state=self._s.state,
            fence=fence,
            post=self._s.post,
            publish_at=self._s.publish_at,
        )
        retract = RETRACT_POST.with_policy(policies.index_post_policy(self._index_retry))
        results = await asyncio.gather(
            self._record(effect, generation), retract.execute(effect), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                workflow.logger.warning("writing %s failed: %s", self._s.state, result)
