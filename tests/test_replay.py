"""Saved histories of completed workflows must replay against today's workflow code.

A change that would break workflows already running in production (a reordered or removed
activity, a changed timer) makes this fail in CI instead. Histories are recorded by
`python -m tests.support.record_histories blog video post`, `SPOOL_SAVE_HISTORIES=1 pytest
tests/test_video_pipeline.py` (video and captions) and `SPOOL_SAVE_HISTORIES=1 pytest
tests/test_video_deletion.py tests/test_schedules.py` (deletion, housekeeping); keep old ones
when a workflow changes behind a patch, so that the runs already in flight stay covered
(docs/versioning.md).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import worker
from spool.config import Settings
from tests.support.paths import HISTORIES
from workflows import (
    blog,
    captions,
    deletion,
    delivery,
    housekeeping,
    patches,
    policies,
    posts,
    video,
)
from workflows.blog import BlogPublishWorkflow
from workflows.captions import CaptionsWorkflow
from workflows.deletion import VideoDeletionWorkflow
from workflows.housekeeping import SweepAbandonedWritesWorkflow, SweepExpiredUploadsWorkflow
from workflows.posts import PostWorkflow
from workflows.steps import Step
from workflows.video import VideoPipelineWorkflow

pytestmark = pytest.mark.unit

WORKFLOWS = {
    "blog": [BlogPublishWorkflow],
    "video": [VideoPipelineWorkflow, CaptionsWorkflow],
    "captions": [VideoPipelineWorkflow, CaptionsWorkflow],
    "deletion": [VideoDeletionWorkflow],
    "housekeeping": [SweepAbandonedWritesWorkflow, SweepExpiredUploadsWorkflow],
    "post": [PostWorkflow, BlogPublishWorkflow],
}
SAVED = sorted(HISTORIES.glob("*.json"))


def test_histories_cover_every_workflow():
    kinds = {p.stem.split("-", 1)[0] for p in SAVED}
    assert kinds == set(WORKFLOWS), f"missing histories for {set(WORKFLOWS) - kinds}"
    assert all(re.fullmatch(r"[a-z0-9-]+", p.stem) for p in SAVED)


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS[path.stem.split("-", 1)[0]])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def declared_steps() -> list[Step]:
    return [
        value
        for module in (blog, captions, deletion, delivery, housekeeping, posts, video)
        for value in vars(module).values()
        if isinstance(value, Step)
    ]


def registered_name(step: Step) -> str:
    return step.activity.__temporal_activity_definition.name


def test_each_step_has_one_name():
    """A step's name is its activity id and status name; its policy carries the same name in
    capitals, and its method the registered name without the pipeline's prefix."""
    steps = declared_steps()
    assert {
        "probe",
        "plan",
        "encode",
        "audio",
        "package",
        "storyboard",
        "hls",
        "poster",
        "extract_audio",
        "transcribe",
        "record_captions",
        "record",
        "notify",
        "index_post",
    } <= {step.name for step in steps}
    for step in steps:
        policy_name = step.name.upper().replace("-", "_")
        assert getattr(policies, policy_name, None) is step.policy, step.name
        assert registered_name(step).rsplit(".", 1)[-1] == step.activity.__name__, step.name


def test_each_step_runs_on_the_queue_whose_workers_register_its_activity(tmp_path):
    """A step's queue kind is the kind of worker that runs its activity (worker.py)."""
    kinds = ("pipeline", "media", "captions")
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        **{f"queue_{kind}": f"queue-{kind}" for kind in kinds},
    )
    kind_of = {
        activity.__temporal_activity_definition.name: work.name.removeprefix("queue-")
        for work in worker.plan_queues(settings, list(kinds))
        for activity in work.activities
    }
    for step in declared_steps():
        assert kind_of[registered_name(step)] == step.queue, step.name


def scheduled_activities(path: Path) -> set[tuple[str, str]]:
    events = json.loads(path.read_text())["events"]
    return {
        (attrs["activityType"]["name"], attrs["activityId"])
        for attrs in (e.get("activityTaskScheduledEventAttributes") for e in events)
        if attrs
    }


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_saved_activity_ids_are_declared_steps(path: Path):
    """Every step a saved run scheduled is declared under that name (or the name of one item
    of it, like rendition-720p) with the activity registered under the saved type."""
    steps = declared_steps()
    for activity_type, activity_id in scheduled_activities(path):
        assert any(
            registered_name(s) == activity_type
            and (activity_id == s.name or activity_id.startswith(f"{s.name}-"))
            for s in steps
        ), (activity_type, activity_id)


def patch_ids(path: Path) -> set[str]:
    """The patches a saved run recorded (its core_patch markers)."""
    events = json.loads(path.read_text())["events"]
    return {
        json.loads(base64.b64decode(attrs["details"]["patch-data"]["payloads"][0]["data"]))["id"]
        for attrs in (e.get("markerRecordedEventAttributes") for e in events)
        if attrs and attrs.get("markerName") == "core_patch"
    }


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_saved_runs_recorded_only_named_patches(path: Path):
    """A patch a saved run recorded is named in workflows/patches.py, so it is removed only
    with the histories that need it (docs/versioning.md)."""
    assert patch_ids(path) <= patches.ALL
