"""Pytest plugin: one real Elasticsearch node per test session, started on first use."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from devstack.proc import free_port
from tests.support.paths import LOGS

LOG_PATH = LOGS / "elasticsearch.log"


@pytest.fixture(scope="session")
def es_url(tmp_path_factory):
    from devstack.elasticsearch import ElasticsearchNode
    from tests.support.services import service_missing

    # As root the node runs as an unprivileged user, which cannot enter pytest's 0700 temp
    # root; give it a private directory of its own instead.
    private_home = os.geteuid() == 0
    if private_home:
        home = Path(tempfile.mkdtemp(prefix="spool-es-"))
        home.chmod(0o755)
    else:
        home = tmp_path_factory.mktemp("elasticsearch")
    node = ElasticsearchNode(home / "node", free_port(), LOG_PATH)
    try:
        node.start()
    except Exception as exc:  # noqa: BLE001
        if private_home:
            shutil.rmtree(home, ignore_errors=True)
        service_missing(f"Elasticsearch did not start: {exc}")
    try:
        yield node.url
    finally:
        node.stop()
        if private_home:
            shutil.rmtree(home, ignore_errors=True)
