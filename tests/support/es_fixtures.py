"""Pytest plugin: one real Elasticsearch node per test session, started on first use."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devstack.proc import free_port
from tests.support.paths import LOGS

if TYPE_CHECKING:
    from devstack.elasticsearch import ElasticsearchNode

LOG_PATH = LOGS / "elasticsearch.log"


@contextlib.contextmanager
def elasticsearch_node(tmp_path_factory, name: str, log_path: Path) -> Iterator[ElasticsearchNode]:
    """A node started on a home of its own (``name`` in the folder's name), stopped and its
    home removed on exit; one that does not start is a missing service."""
    from devstack.elasticsearch import ElasticsearchNode
    from tests.support.services import started

    # As root the node runs as an unprivileged user, which cannot enter pytest's 0700 temp
    # root; give it a private directory of its own instead.
    private_home = os.geteuid() == 0
    if private_home:
        home = Path(tempfile.mkdtemp(prefix=f"spool-{name}-"))
        home.chmod(0o755)
    else:
        home = tmp_path_factory.mktemp(name)
    node = ElasticsearchNode(home / "node", free_port(), log_path)
    try:
        with started(node, "Elasticsearch"):
            yield node
    finally:
        if private_home:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def es_url(tmp_path_factory):
    with elasticsearch_node(tmp_path_factory, "es", LOG_PATH) as node:
        yield node.url
