"""Schema migrations on both supported databases: SQLite files and a real PostgreSQL server.

Every database here is new and private to its test: a SQLite file in tmp_path, or a fresh
database on the session's PostgreSQL server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from spool.config import Settings
from spool.db import create_schema, ensure_schema, get_engine, make_engine, metadata
from spool.db.blog import add_followers, author_post_count, followers_of, get_post
from spool.db.migrations import BASELINE, SchemaError, head_revision, upgrade_to_head
from spool.db.video import get_video, videos
from tests.support.paths import REPO
from tests.support.processes import environ_without_spool, spool_variables

pytestmark = pytest.mark.unit

PROCESSES = 6


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def new_database(request, tmp_path: Path):
    """Makes empty databases of the parametrised kind; returns their URLs."""
    if request.param == "postgresql":
        return request.getfixturevalue("new_postgres_database")
    counter = iter(range(1_000))
    return lambda: f"sqlite:///{tmp_path / f'db{next(counter)}' / 'spool.db'}"


@pytest.fixture
def url(new_database) -> str:
    url = new_database()
    if url.startswith("sqlite:///"):
        Path(sa.make_url(url).database).parent.mkdir(parents=True)
    return url


@pytest.fixture
def engine(url: str):
    engine = make_engine(url)
    yield engine
    engine.dispose()


def settings_for(url: str, tmp_path: Path, **overrides) -> Settings:
    # Explicit, so that a developer's .env cannot change what the test means.
    return Settings(
        **{"database_url": url, "data_dir": tmp_path / "data", "db_auto_migrate": True, **overrides}
    )


def version_rows(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def schema_snapshot(engine) -> dict:
    """Everything inspection sees in a schema, apart from the migration bookkeeping."""
    inspector = sa.inspect(engine)
    snapshot = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        snapshot[table] = {
            "columns": [
                (c["name"], c["type"].compile(engine.dialect), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), i["unique"])
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
            "checks": sorted(c["sqltext"] for c in inspector.get_check_constraints(table)),
        }
    return snapshot


def create_baseline_tables(engine) -> None:
    """The tables create_all made before migrations existed: revision 0001's (today's
    metadata has later columns), with no migration history."""
    from alembic import command

    from spool.db.migrations import alembic_config

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), BASELINE)
        conn.execute(sa.text("DROP TABLE alembic_version"))


def run_migrate(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spool.migrate", *args],
        env=migrate_env(url, tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def migrate_env(url: str, tmp_path: Path) -> dict[str, str]:
    """Only the database and a data directory of the test's own: no outside SPOOL_* value."""
    return {
        **environ_without_spool(),
        **spool_variables(database_url=url, data_dir=tmp_path / "data"),
    }


def one_line(result: subprocess.CompletedProcess, stream: str) -> str:
    """The single line the command printed on `stream`; the other stream must be empty."""
    other = "stderr" if stream == "stdout" else "stdout"
    assert getattr(result, other) == "", getattr(result, other)
    lines = getattr(result, stream).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_migrations_make_exactly_the_schema_the_tables_declare(new_database):
    migrated, created = make_engine(new_database()), make_engine(new_database())
    for engine in (migrated, created):
        if engine.dialect.name == "sqlite":
            Path(engine.url.database).parent.mkdir(parents=True)
    try:
        upgrade_to_head(migrated)
        create_schema(created)
        assert schema_snapshot(migrated) == schema_snapshot(created)
        assert len(schema_snapshot(migrated)) == len(metadata.tables)
        with migrated.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        migrated.dispose()
        created.dispose()


def test_a_fresh_database_is_upgraded_from_base_to_head(engine):
    first = upgrade_to_head(engine)
    assert (first.before, first.after, first.stamped) == (None, head_revision(), False)
    assert version_rows(engine) == [head_revision()]
    again = upgrade_to_head(engine)
    assert (again.before, again.after) == (head_revision(), head_revision())
    assert again.describe() == f"already at head {head_revision()}"


def test_a_database_from_before_migrations_is_stamped_and_upgraded_with_its_data(engine):
    create_baseline_tables(engine)  # what every process made before migrations existed
    # The rows a publish wrote then (the code of today writes the columns of today).
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO authors (author_id, post_count) VALUES ('ada', 1)"))
        conn.execute(sa.text("INSERT INTO author_posts (author_id, post_id) VALUES ('ada', 'p1')"))
        conn.execute(
            sa.text(
                "INSERT INTO posts (post_id, author_id, version, title, tags, published_at)"
                " VALUES ('p1', 'ada', 2, 'Kept', '[\"x\"]', NULL)"
            )
        )
    add_followers(engine, "ada", ["bob", "cy"])
    # As a process wrote it then: today's ensure_video also reads a table of a later revision.
    with engine.begin() as conn:
        conn.execute(videos.insert().values(video_id="v1", owner_id="ada", status="ready"))

    result = upgrade_to_head(engine)

    assert (result.before, result.stamped, result.after) == (None, True, head_revision())
    assert "stamped at 0001" in result.describe()
    assert version_rows(engine) == [head_revision()]
    assert author_post_count(engine, "ada") == 1
    assert get_post(engine, "p1")["title"] == "Kept"
    assert followers_of(engine, "ada") == ["bob", "cy"]
    assert get_video(engine, "v1")["status"] == "ready"


def test_tables_that_are_not_the_baseline_are_refused_and_left_alone(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE authors (author_id VARCHAR(10) PRIMARY KEY)"))
    with pytest.raises(SchemaError, match=f"not revision {BASELINE}'s") as refused:
        upgrade_to_head(engine)
    assert "\n" not in str(refused.value)
    # The failed attempt rolled back whole: nothing stamped, nothing created.
    assert set(sa.inspect(engine).get_table_names()) == {"authors"}


def test_a_process_migrates_on_first_use_and_then_only_reads_the_revision(url, tmp_path):
    settings = settings_for(url, tmp_path)
    engine = get_engine(settings)
    assert version_rows(engine) == [head_revision()]
    statements: list[str] = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    ensure_schema(engine, settings)
    assert statements == ["SELECT version_num FROM alembic_version"]


def test_a_process_refuses_an_old_schema_when_auto_migrate_is_off(url, tmp_path):
    settings = settings_for(url, tmp_path, db_auto_migrate=False)
    with pytest.raises(SchemaError) as refused:
        get_engine(settings)
    assert str(refused.value) == (
        f"database schema is at revision <none>, expected "
        f"{head_revision()}: run `python -m spool.migrate`"
    )
    assert run_migrate(url, tmp_path).returncode == 0
    assert version_rows(get_engine(settings)) == [head_revision()]


def test_check_fails_before_and_passes_after_migrating(url, tmp_path):
    before = run_migrate(url, tmp_path, "--check")
    assert before.returncode == 3
    assert one_line(before, "stderr").endswith(
        f"is at revision <none>, expected {head_revision()}: run `python -m spool.migrate`"
    )

    migrated = run_migrate(url, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert one_line(migrated, "stdout").endswith(f"upgraded from <none> to {head_revision()}")

    again = run_migrate(url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert one_line(again, "stdout").endswith(f"already at head {head_revision()}")

    after = run_migrate(url, tmp_path, "--check")
    assert after.returncode == 0, after.stderr
    assert one_line(after, "stdout").endswith(f"is at head {head_revision()}")


def test_an_unreachable_database_is_one_line_and_exit_4(tmp_path):
    from devstack.proc import free_port

    url = f"postgresql+psycopg://spool:secret@127.0.0.1:{free_port()}/spool"
    for args in ((), ("--check",)):
        result = run_migrate(url, tmp_path, *args)
        assert result.returncode == 4
        line = one_line(result, "stderr")
        assert "OperationalError" in line and "secret" not in line


def test_processes_started_together_migrate_once(url, tmp_path):
    """Every process waits on one pipe, so all are released at the same instant."""
    release_read, release_write = os.pipe()
    child = (
        "import sys\n"
        "from spool import migrate\n"
        "from spool.db import migrations\n"
        "migrations.script_directory()\n"  # all loading done before the start line
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"  # returns when the test closes the pipe's other end
        "sys.exit(migrate.main([]))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child],
            stdin=release_read,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=migrate_env(url, tmp_path),
            cwd=REPO,
        )
        for _ in range(PROCESSES)
    ]
    os.close(release_read)
    try:
        assert [p.stdout.readline() for p in procs] == ["ready\n"] * PROCESSES
    finally:
        os.close(release_write)
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]

    assert [code for code, _, _ in results] == [0] * PROCESSES, results
    lines = sorted(out.strip().split(" ", 2)[-1] for _, out, _ in results)
    head = head_revision()
    assert lines == sorted(
        [f"upgraded from <none> to {head}"] + [f"already at head {head}"] * (PROCESSES - 1)
    )
    engine = make_engine(url)
    try:
        assert version_rows(engine) == [head]
    finally:
        engine.dispose()
