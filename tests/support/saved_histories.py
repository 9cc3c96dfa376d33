"""Saving a completed workflow's history for the replay test (docs/ARCHITECTURE.md, rule 7)."""

from __future__ import annotations

import os

from temporalio.client import WorkflowHistory

from tests.support.paths import HISTORIES


def save_history(name: str, history: WorkflowHistory) -> None:
    """Keep one completed history per scenario: written once, and again only when
    SPOOL_SAVE_HISTORIES is set (re-recording after a deliberate change)."""
    path = HISTORIES / f"{name}.json"
    if path.exists() and not os.environ.get("SPOOL_SAVE_HISTORIES"):
        return
    HISTORIES.mkdir(exist_ok=True)
    path.write_text(history.to_json())
