"""Pytest plugin: one real PostgreSQL server per test session, started on first use, and
``engine``: Spool's schema on SQLite and on that server, each test once per database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from devstack.proc import free_port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of the server's `spool` database, shared by the whole session."""
    from devstack.postgres import PostgresServer
    from tests.support.paths import LOGS
    from tests.support.services import started

    with started(PostgresServer(free_port(), LOGS / "postgres.log"), "PostgreSQL") as server:
        yield server.url


@pytest.fixture
def new_postgres_database(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases on the session's server (for tests that need a fresh schema);
    they are dropped at the end of the test."""
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    created: list[str] = []

    def make() -> str:
        name = f"spool_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            # FORCE: engines a test left open (get_engine caches them) must not block the drop.
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgresql", marks=pytest.mark.e2e),
    ]
)
def engine(request, tmp_path: Path):
    """An engine on a fresh Spool schema: the test runs once on SQLite, once on PostgreSQL."""
    from spool.db import create_schema, make_engine

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'spool.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()
