"""Saved histories of completed workflows must replay against today's workflow code.

A change that would break workflows already running in production (a reordered or removed
activity, a changed timer) makes this fail in CI instead. Histories are recorded by
`python -m tests.record_histories` (blog) and `SPOOL_SAVE_HISTORIES=1 pytest
tests/test_video_pipeline.py` (video and captions); keep old ones when a workflow changes,
so that the runs already in flight stay covered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.blog import BlogPublishWorkflow
from workflows.captions import CaptionsWorkflow
from workflows.video import VideoPipelineWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
WORKFLOWS = {"blog": [BlogPublishWorkflow],
             "video": [VideoPipelineWorkflow, CaptionsWorkflow],
             "captions": [VideoPipelineWorkflow, CaptionsWorkflow]}
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
