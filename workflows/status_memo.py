"""A job's status kept in its run's memo, so the status a user asks for needs no worker.

The service reads a job's status with one ``describe`` (spool/service/jobs.py): the memo
holds what the workflow's ``status`` query would answer, and the pending activities'
heartbeats bring the progress. A workflow keeps it so (workflows/blog.py)::

    self._memo = StatusMemo(self.status)     # in __init__
    return await self._memo.run(self._run(inp))  # the run itself: kept from start to end
    self._memo.changed()                     # wherever the status changes (StepBook.on_change)

Each upsert is a history event (WorkflowPropertiesModified), so there is one at the end of a
workflow task that changed the status, never one per change, and none for heartbeats, which
never reach the workflow. Workflow code, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.patches as patches  # see workflows/blog.py: no re-run per workflow
    from spool.models.search_attributes import STATUS_MEMO


T = TypeVar("T")


class StatusMemo:
    """The run's ``status`` in its memo under STATUS_MEMO, upserted when it changed."""

    def __init__(self, status: Callable[[], object]) -> None:
        self._status = status
        self._kept = False  # whether this run keeps it (runs from before the patch do not)
        self._stale = False  # whether it changed in the current workflow task
        self._data = b""  # the payload last upserted

    def start(self) -> None:
        """Whether the run keeps its status in its memo is decided once, at its start."""
        self._kept = workflow.patched(patches.STATUS_MEMO)
        if self._kept:
            asyncio.create_task(self._keep())  # noqa: RUF006 - lives as long as the run

    async def run(self, work: Awaitable[T]) -> T:
        """``work`` (the rest of the run) with the memo kept from its start, and flushed by
        the task that ends it: with a result, a failure or a cancel. Not when the worker
        evicts the run from its cache: the SDK then closes the coroutine (GeneratorExit)
        outside the workflow's event loop, where no workflow code may run, and the run is
        not over (a flush in a ``finally`` raised there, "Not in workflow event loop")."""
        self.start()
        try:
            result = await work
        except (Exception, asyncio.CancelledError):
            self.flush()
            raise
        self.flush()
        return result

    def changed(self) -> None:
        self._stale = self._kept

    async def _keep(self) -> None:
        """The status into the memo once at the end of each workflow task that changed it:
        a condition is looked at only when every coroutine the task woke has stopped, so
        steps started or ended together in one task make one upsert, and the memo is as
        fresh as the query (which is answered between workflow tasks, never within one)."""
        while True:
            await workflow.wait_condition(lambda: self._stale)
            self.flush()

    def flush(self) -> None:
        """Upsert the status now, unless it is what the memo holds. The task that ends the
        run (a result, a failure, a cancel) calls it itself: no later task would."""
        if not self._kept:
            return
        self._stale = False
        status = self._status()
        data = workflow.payload_converter().to_payload(status).data
        if data != self._data:
            self._data = data
            workflow.upsert_memo({STATUS_MEMO: status})
