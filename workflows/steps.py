"""Steps: what a workflow runs, and the one runner that keeps their status.

A :class:`Step` binds one name to its activity and its policy. The name is the activity id
and the status's ``steps[].name`` (spool.status merges the server's retry state in by it),
and the policy in workflows/policies.py carries the same name in capitals; the activity is a
method reference, so the registered name, the code and the input and result types are one
hop away (docs/ARCHITECTURE.md, step table). Names are part of the API and of running
histories: keep them, or change them behind ``workflow.patched``.

:class:`StepBook` is the only code that moves a step between states: pending, running, then
done, failed or cancelled (skipped for a step that never ran). Workflow code, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from spool.models import StepState, StepStatus
    from workflows.errors import failure_message

T = TypeVar("T")
UNFINISHED = (StepStatus.PENDING, StepStatus.RUNNING)


@dataclass(frozen=True)
class Step:
    """One step: its name, the activity method it runs and its policy."""

    name: str
    activity: Callable[..., Any]
    policy: policies.StepPolicy

    def at(self, suffix: str) -> Step:
        """The same step for one item: ``rendition`` at ``720p`` is ``rendition-720p``."""
        return replace(self, name=f"{self.name}-{suffix}")

    def with_policy(self, policy: policies.StepPolicy) -> Step:
        """The same step under a job's own bounds (retry time, attempts)."""
        return replace(self, policy=policy)

    def execute(
        self, arg: Any, *, queue: str | None = None, priority: Priority | None = None
    ) -> Awaitable[Any]:
        """Schedule the activity under the step's name and policy (and ``priority`` among
        the queue's tasks); the result type is the method's own return annotation."""
        options = policies.activity_options(self.policy)
        if queue is not None:
            options["task_queue"] = queue
        if priority is not None:
            options["priority"] = priority
        return workflow.execute_activity_method(
            self.activity, arg, activity_id=self.name, **options
        )


@dataclass
class Outcome(Generic[T]):
    """How a tracked step ended: its value, or why it has none."""

    value: T | None = None
    error: str | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


class StepBook:
    """A job's steps in the order they are shown, and the one way they change state."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._steps: dict[str, StepState] = {}
        self.add(*names)

    def add(self, *names: str) -> None:
        for name in names:
            self._steps.setdefault(name, StepState(name=name))

    def states(self) -> list[StepState]:
        return list(self._steps.values())

    async def run(
        self,
        step: Step,
        arg: Any,
        *,
        queue: str | None = None,
        progress: bool = False,
        priority: Priority | None = None,
    ) -> Outcome[Any]:
        """Run one activity step; ``progress`` steps show 100 % once done."""
        return await self.track(
            (step.name,), step.execute(arg, queue=queue, priority=priority), progress=progress
        )

    async def track(
        self, names: tuple[str, ...], work: Awaitable[T], *, progress: bool = False
    ) -> Outcome[T]:
        """Await ``work`` as the steps ``names`` (a child workflow stands for several): the
        first runs at once; a failure or a cancel ends every one not yet finished."""
        self.add(*names)
        self._steps[names[0]].state = StepStatus.RUNNING
        try:
            value = await work
        except (ActivityError, ChildWorkflowError) as err:
            if is_cancelled_exception(err):
                self.end_unfinished(StepStatus.CANCELLED, names=names)
                return Outcome(cancelled=True)
            message = failure_message(err)
            self.end_unfinished(StepStatus.FAILED, names=names, error=message)
            return Outcome(error=message)
        for name in names:
            self._steps[name].state = StepStatus.DONE
            if progress:
                self._steps[name].percent = 100.0
        return Outcome(value)

    def start(self, *names: str) -> None:
        """Pending steps whose work is not one activity run here (a rendition made of
        chunks, an aggregate of items) show as running."""
        for name in names:
            if self._steps[name].state == StepStatus.PENDING:
                self._steps[name].state = StepStatus.RUNNING

    def set_percent(self, name: str, percent: float) -> None:
        self._steps[name].percent = round(min(100.0, max(0.0, percent)), 1)

    def adopt(self, reported: Iterable[StepState]) -> None:
        """Take the states a child workflow reports for steps shown here."""
        for child in reported:
            step = self._steps.get(child.name)
            if step is not None:
                step.state, step.last_error = child.state, child.last_error

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

    def skip(self, names: Iterable[str], why: str) -> None:
        for name in names:
            self._steps[name].state = StepStatus.SKIPPED
            self._steps[name].detail = why

    def note_cancelled(self, name: str, detail: str) -> None:
        """A step cancelled after the job's outcome was decided says so."""
        step = self._steps.get(name)
        if step is not None and step.state == StepStatus.CANCELLED:
            step.detail = detail


async def every_branch(*branches: Awaitable[Any]) -> list[Any]:
    """Run branches side by side and return once EVERY one has ended, then raise the first
    error, if any (a cancel included).

    ``asyncio.gather`` raises as soon as one branch is cancelled or fails, while the others
    still wait for their activities to confirm a cancel: the job would then end (and be
    reported cancelled) with an ffmpeg still running. A cancelled job must stop all its work
    first (docs/ARCHITECTURE.md, cancel).
    """
    results = await asyncio.gather(*branches, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
