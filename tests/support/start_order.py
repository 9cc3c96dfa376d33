"""A worker interceptor that notes the order a worker starts its activities in."""

from __future__ import annotations

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor


class StartOrder(Interceptor):
    """Notes the id of each activity as the worker starts it, in ``started``."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        started = self.started

        class Note(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput):
                started.append(activity.info().activity_id)
                return await super().execute_activity(input)

        return Note(next)
