"""Where the checkout's files are, for tests and for the programs tests start."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Logs and screenshots a run leaves for a person to read (not cleaned between runs).
ARTIFACTS = REPO / "artifacts"
# Server logs; each of the suite's parallel processes (pytest-xdist) keeps its own.
LOGS = ARTIFACTS / "logs" / os.environ.get("PYTEST_XDIST_WORKER", "")
# Saved workflow histories, replayed by tests/test_replay.py (ARCHITECTURE.md rule 7).
HISTORIES = REPO / "tests" / "histories"
