"""What a job's history says about its activities: when each was scheduled, started and
ended, and which worker ran it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ActivityRun:
    activity_id: str
    activity_type: str
    scheduled: float  # epoch seconds
    started: float | None = None  # of the attempt that ended
    ended: float | None = None  # completed (None: failed, timed out, cancelled or running)
    worker: str = ""  # the identity of the worker that ran it

    @property
    def seconds(self) -> float:
        assert self.started is not None and self.ended is not None
        return self.ended - self.started


async def activity_runs(handle) -> tuple[list[ActivityRun], float, float]:
    """(every activity of the run, in the order scheduled; the run's first event's time;
    its last event's time)."""
    history = await handle.fetch_history()
    runs: dict[int, ActivityRun] = {}
    first = last = 0.0
    for event in history.events:
        at = event.event_time.ToDatetime().timestamp()
        first, last = first or at, at
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            runs[event.event_id] = ActivityRun(attrs.activity_id, attrs.activity_type.name, at)
        elif event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            runs[attrs.scheduled_event_id].started = at
            runs[attrs.scheduled_event_id].worker = attrs.identity
        elif event.HasField("activity_task_completed_event_attributes"):
            runs[event.activity_task_completed_event_attributes.scheduled_event_id].ended = at
    return list(runs.values()), first, last
