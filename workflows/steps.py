"""Steps: what a workflow runs, and the one runner that keeps their status.

A :class:`Step` binds one name to its activity, its policy and the kind of queue it runs on.
The name is the activity id and the status's ``steps[].name`` (spool/service/jobs.py merges
the server's retry state in by it), and the policy in workflows/policies.py carries the same
name in capitals; the activity is a method reference, so the registered name, the code and
the input and result types are one hop away (docs/ARCHITECTURE.md, step table). A step is
typed by them: ``Step[ProbeInput, ProbeResult]`` takes only a ``ProbeInput`` and gives a
``ProbeResult``. Names are part of the API and of running histories: keep them, or change
them behind a patch (workflows/patches.py).

:class:`StepBook` is the only code that moves a step between states: pending, running, then
done, failed or cancelled (skipped for a step that never ran); it also resolves each step's
queue kind to the job's queue. Workflow code, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Generic, TypeVar, cast

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from spool.models import StepState, StepStatus
    from spool.models.failures import failure_message

T = TypeVar("T")
InputT = TypeVar("InputT")  # what a step's activity takes
ResultT = TypeVar("ResultT")  # and what it gives
UNFINISHED = (StepStatus.PENDING, StepStatus.RUNNING)


class QueueKind(StrEnum):
    """The kind of work a step is, and so the task queue it runs on (docs/ARCHITECTURE.md,
    the flow of a job): light work, ffmpeg, or Whisper."""

    PIPELINE = "pipeline"
    MEDIA = "media"
    CAPTIONS = "captions"


@dataclass(frozen=True)
class JobQueues:
    """The task queue of each kind for one job, named by its input (workflows cannot read
    settings); None runs the step on the workflow's own queue."""

    pipeline: str | None = None
    media: str | None = None
    captions: str | None = None

    def of(self, kind: QueueKind) -> str | None:
        return {
            QueueKind.PIPELINE: self.pipeline,
            QueueKind.MEDIA: self.media,
            QueueKind.CAPTIONS: self.captions,
        }[kind]


@dataclass(frozen=True)
class Step(Generic[InputT, ResultT]):
    """One step: its name, the activity method it runs, its policy and its queue's kind."""

    name: str
    # An async or a plain method (blog activities run on threads), taking InputT, giving
    # ResultT.
    activity: Callable[[Any, InputT], Awaitable[ResultT]] | Callable[[Any, InputT], ResultT]
    policy: policies.StepPolicy
    queue: QueueKind

    def at(self, suffix: str) -> Step[InputT, ResultT]:
        """The same step for one item: ``package`` at ``720p`` is ``package-720p``."""
        return replace(self, name=f"{self.name}-{suffix}")

    def with_policy(self, policy: policies.StepPolicy) -> Step[InputT, ResultT]:
        """The same step under a job's own bounds (retry time, attempts)."""
        return replace(self, policy=policy)

    def execute(
        self,
        arg: InputT,
        *,
        queue: str | None = None,
        priority: Priority | None = None,
        summary: str | None = None,
    ) -> Awaitable[ResultT]:
        """Schedule the activity under the step's name and policy, on ``queue`` (and with
        ``priority`` among the queue's tasks). ``summary`` is the line the Temporal UI shows
        for it (the step's name if none): its type alone does not tell one chunk or rendition
        from another."""
        options = policies.activity_options(self.policy)
        options["summary"] = summary or self.name
        if queue is not None:
            options["task_queue"] = queue
        if priority is not None:
            options["priority"] = priority
        # The SDK runs a plain method as it runs an async one, and either gives its result:
        # one signature for the type checker, whose overloads would not match the union.
        method = cast("Callable[[Any, InputT], Awaitable[ResultT]]", self.activity)
        return workflow.execute_activity_method(method, arg, activity_id=self.name, **options)


@dataclass(frozen=True)
class Done(Generic[T]):
    """A tracked step that ended with its value."""

    value: T


@dataclass(frozen=True)
class Failed:
    """A tracked step that failed after its retries, and why."""

    error: str


@dataclass(frozen=True)
class Cancelled:
    """A tracked step that the job's cancel stopped."""


# How a tracked step ended: match on it, and the value's type is the step's own.
Outcome = Done[T] | Failed | Cancelled


class StepBook:
    """A job's steps in the order they are shown, and the one way they change state."""

    def __init__(self, names: Iterable[str] = (), *, queues: JobQueues | None = None) -> None:
        self._steps: dict[str, StepState] = {}
        self._queues = queues or JobQueues()
        # Called after every change of a step's state, percent or error: the workflow shows
        # its steps in the UI's current details (workflow.set_current_details).
        self.on_change: Callable[[], None] = lambda: None
        self.add(*names)

    def add(self, *names: str) -> None:
        if any(name not in self._steps for name in names):
            for name in names:
                self._steps.setdefault(name, StepState(name=name))
            self.on_change()

    def states(self) -> list[StepState]:
        return list(self._steps.values())

    def ended(self, name: str) -> bool:
        """Whether the step has its final state (done, failed, skipped or cancelled)."""
        step = self._steps.get(name)
        return step is not None and step.state not in UNFINISHED

    def execute(
        self,
        step: Step[InputT, ResultT],
        arg: InputT,
        *,
        priority: Priority | None = None,
        summary: str | None = None,
    ) -> Awaitable[ResultT]:
        """Schedule a step on the job's queue of its kind, without tracking it: a record or
        an announcement, or an item whose state its caller keeps (a chunk)."""
        return step.execute(
            arg, queue=self._queues.of(step.queue), priority=priority, summary=summary
        )

    async def run(
        self,
        step: Step[InputT, ResultT],
        arg: InputT,
        *,
        progress: bool = False,
        priority: Priority | None = None,
        summary: str | None = None,
    ) -> Outcome[ResultT]:
        """Run one activity step; ``progress`` steps show 100 % once done."""
        return await self.track(
            (step.name,),
            self.execute(step, arg, priority=priority, summary=summary),
            progress=progress,
        )

    async def track(
        self, names: tuple[str, ...], work: Awaitable[T], *, progress: bool = False
    ) -> Outcome[T]:
        """Await ``work`` as the steps ``names`` (a child workflow stands for several): the
        first runs at once; a failure or a cancel ends every one not yet finished."""
        self.add(*names)
        self._steps[names[0]].state = StepStatus.RUNNING
        self.on_change()
        try:
            value = await work
        except (ActivityError, ChildWorkflowError) as err:
            if is_cancelled_exception(err):
                self.end_unfinished(StepStatus.CANCELLED, names=names)
                return Cancelled()
            message = failure_message(err)
            self.end_unfinished(StepStatus.FAILED, names=names, error=message)
            return Failed(message)
        for name in names:
            self._steps[name].state = StepStatus.DONE
            if progress:
                self._steps[name].percent = 100.0
        self.on_change()
        return Done(value)

    def start(self, *names: str) -> None:
        """Pending steps whose work is not one activity run here (a rendition made of
        chunks, an aggregate of items) show as running."""
        for name in names:
            if self._steps[name].state == StepStatus.PENDING:
                self._steps[name].state = StepStatus.RUNNING
        self.on_change()

    def set_percent(self, name: str, percent: float) -> None:
        self._steps[name].percent = round(min(100.0, max(0.0, percent)), 1)
        self.on_change()

    def adopt(self, reported: Iterable[StepState]) -> None:
        """Take the states a child workflow reports for steps shown here."""
        for child in reported:
            step = self._steps.get(child.name)
            if step is not None:
                step.state, step.last_error = child.state, child.last_error
        self.on_change()

    def end_unfinished(
        self,
        state: StepStatus,
        *,
        names: Iterable[str] | None = None,
        error: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Give every pending or running step (of ``names``, or all) a final state."""
        for name in self._steps if names is None else names:
            step = self._steps.get(name)
            if step is not None and step.state in UNFINISHED:
                step.state = state
                step.last_error = error if error is not None else step.last_error
                step.detail = detail if detail is not None else step.detail
        self.on_change()

    def skip(self, names: Iterable[str], why: str) -> None:
        for name in names:
            self._steps[name].state = StepStatus.SKIPPED
            self._steps[name].detail = why
        self.on_change()

    def note_cancelled(self, name: str, detail: str) -> None:
        """A step cancelled after the job's outcome was decided says so."""
        step = self._steps.get(name)
        if step is not None and step.state == StepStatus.CANCELLED:
            step.detail = detail
            self.on_change()


async def every_branch(*branches: Awaitable[T]) -> list[T]:
    """Run branches side by side and return once EVERY one has ended, then raise the first
    error, if any (a cancel included).

    ``asyncio.gather`` raises as soon as one branch is cancelled or fails, while the others
    still wait for their activities to confirm a cancel: the job would then end (and be
    reported cancelled) with an ffmpeg still running. A cancelled job must stop all its work
    first (workflows/video.py, ending).
    """
    results = await asyncio.gather(*branches, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if not isinstance(result, BaseException)]
