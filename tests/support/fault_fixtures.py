"""Pytest plugin: the fixtures the fault modules share (tests/test_faults_*.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.proc import free_port
from spool.config import Settings


@pytest.fixture
def keeper():
    """One thread that outlives every server a test restarts on it: a child's parent-death
    signal (spool.process.die_with_parent) fires when the *thread* that started it ends, and
    a restart must not block the event loop the in-process worker runs on. Fixtures that
    depend on this one stop their servers before it ends."""
    with ThreadPoolExecutor(1, thread_name_prefix="server-keeper") as pool:
        yield pool


@pytest.fixture
def stack_settings(tmp_path, monkeypatch) -> Settings:
    """Settings for an embedded stack in tmp_path; its processes inherit this environment."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", api_port=free_port())
    monkeypatch.setenv("SPOOL_API_PORT", str(settings.api_port))
    # The webhook receiver is on loopback, as a developer's is (the stack's default).
    monkeypatch.setenv("SPOOL_WEBHOOK_ALLOW_PRIVATE", "true")
    return settings
