"""Pytest plugin: ``make cluster``'s topology for the cluster modules (tests/test_cluster.py,
tests/test_cluster_temporal.py), one per module, and a Temporal client of it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from temporalio.client import Client

from devstack.cluster import Cluster
from devstack.proc import free_port
from spool.config import Settings


@pytest.fixture(scope="module")
def cluster():
    from tests.support.services import service_missing, started

    if shutil.which("unshare") is None:
        service_missing("unshare (util-linux) is needed to isolate the cluster's hosts")
    root = Path(tempfile.mkdtemp(prefix="spool-cluster-"))
    root.chmod(0o755)  # Elasticsearch's unprivileged user must reach its home inside
    c = Cluster(
        root / "cluster",
        api_port=free_port(),
        temporal_port=free_port(),
        worker_module={"media": "tests.support.paced_worker"},
    )
    try:
        with started(c, "the cluster"):
            yield c
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def cluster_client(cluster) -> Client:
    from spool.temporal import connect

    return await connect(
        Settings(temporal_address=cluster.temporal.address, temporal_tls=False), wait_seconds=30
    )
