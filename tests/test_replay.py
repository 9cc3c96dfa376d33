"""Saved histories of completed workflows must replay against today's workflow code.

A change that would break workflows already running in production (a reordered or removed
activity, a changed timer) makes this fail in CI instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.blog import BlogPublishWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
BLOG_HISTORIES = sorted(HISTORIES.glob("blog-*.json"))


def test_blog_histories_are_recorded():
    assert len(BLOG_HISTORIES) >= 3, "run: python -m tests.record_histories"


@pytest.mark.parametrize("path", BLOG_HISTORIES, ids=lambda p: p.stem)
async def test_blog_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await Replayer(workflows=[BlogPublishWorkflow]).replay_workflow(history)
    assert result.replay_failure is None
