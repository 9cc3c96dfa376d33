"""worker.py's Worker Deployment version, from settings, and its runs' versioning behaviour
(docs/deploys.md). The deploy itself, on the real server: tests/test_deploys.py."""

from __future__ import annotations

import pytest
from temporalio.common import VersioningBehavior

import worker
from spool.config import Settings
from workflows.blog import BlogPublishWorkflow
from workflows.captions import CaptionsWorkflow
from workflows.deletion import VideoDeletionWorkflow
from workflows.housekeeping import SweepAbandonedWritesWorkflow
from workflows.video import VideoPipelineWorkflow

pytestmark = pytest.mark.unit


def behaviour(workflow_class) -> VersioningBehavior:
    return workflow_class.__temporal_workflow_definition.versioning_behavior


def test_unset_deployment_means_an_unversioned_worker():
    assert worker.deployment_config(Settings(_env_file=None)) is None


def test_deployment_and_build_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPOOL_WORKER_DEPLOYMENT", "spool")
    monkeypatch.setenv("SPOOL_WORKER_BUILD_ID", "2026-12-07.1")
    config = worker.deployment_config(Settings(_env_file=None))
    assert config is not None and config.use_worker_versioning
    assert config.version.deployment_name == "spool"
    assert config.version.build_id == "2026-12-07.1"


@pytest.mark.parametrize(
    "fields", [{"worker_deployment": "spool"}, {"worker_build_id": "2026-12-07.1"}]
)
def test_half_a_version_is_refused(fields):
    with pytest.raises(ValueError, match="SPOOL_WORKER_DEPLOYMENT and SPOOL_WORKER_BUILD_ID"):
        worker.deployment_config(Settings(_env_file=None, **fields))


def test_a_versioned_workers_runs_stay_on_the_version_that_started_them():
    config = worker.deployment_config(
        Settings(_env_file=None, worker_deployment="spool", worker_build_id="b1")
    )
    assert config is not None
    assert config.default_versioning_behavior == VersioningBehavior.PINNED


@pytest.mark.parametrize(
    "workflow_class",
    [
        VideoPipelineWorkflow,
        CaptionsWorkflow,
        BlogPublishWorkflow,
        VideoDeletionWorkflow,
        SweepAbandonedWritesWorkflow,
    ],
)
def test_no_workflow_declares_its_own_behaviour(workflow_class):
    """The SDK sends a behaviour declared on @workflow.defn from unversioned workers too,
    and the server refuses their workflow tasks ("versioning behavior cannot be specified
    without deployment options being set with versioned mode"): declared there, it would
    stop every unversioned setup."""
    assert behaviour(workflow_class) in (None, VersioningBehavior.UNSPECIFIED)
