"""What the server says about a workflow's activities: the attempts its history records,
and the progress its running activities last heartbeated."""

from __future__ import annotations

import json
from collections.abc import Iterator

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo


def activity_events(history, event_type: EventType.ValueType) -> Iterator[tuple[object, object]]:
    """(the activity's scheduled-event attributes, the event) for each of the history's
    activity events of ``event_type``: started or completed."""
    scheduled = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes
        elif event.event_type == event_type:
            attrs = (
                event.activity_task_started_event_attributes
                if event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                else event.activity_task_completed_event_attributes
            )
            yield scheduled[attrs.scheduled_event_id], event


def _started_attempts(history) -> Iterator[tuple[object, int]]:
    """(scheduled-event attributes, attempt) of each recorded activity start (the server
    records a retried activity's start once, with its final attempt number)."""
    for activity, event in activity_events(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED):
        yield activity, event.activity_task_started_event_attributes.attempt


async def attempts_by_activity(handle) -> dict[str, list[int]]:
    """Activity id -> the attempt numbers of its recorded starts."""
    attempts: dict[str, list[int]] = {}
    for activity, attempt in _started_attempts(await handle.fetch_history()):
        attempts.setdefault(activity.activity_id, []).append(attempt)
    return attempts


async def highest_attempt_by_type(handle) -> dict[str, int]:
    """Activity type name -> the highest attempt any activity of that type reached."""
    highest: dict[str, int] = {}
    for activity, attempt in _started_attempts(await handle.fetch_history()):
        name = activity.activity_type.name
        highest[name] = max(highest.get(name, 0), attempt)
    return highest


async def heartbeating_activities(handle) -> list[tuple[PendingActivityInfo, float]]:
    """(the pending activity, the percent of its last heartbeat) for each activity the server
    sees running that has heartbeated at least once."""
    running = []
    for pending in (await handle.describe()).raw_description.pending_activities:
        if (
            pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            and pending.heartbeat_details.payloads
        ):
            details = json.loads(pending.heartbeat_details.payloads[-1].data)
            running.append((pending, details.get("percent", 0)))
    return running
