"""Schema migrations (Alembic), shipped inside the package and configured in code.

``upgrade_to_head`` is the one way Spool changes a schema: ``python -m spool.migrate`` and
processes starting with ``db_auto_migrate`` both call it. It holds a lock for the whole
check-and-upgrade, so any number of processes may start against the same database at once:
the first migrates, the others wait and then find the schema at head.

- PostgreSQL: ``pg_advisory_xact_lock`` taken inside the migration's own transaction; the DDL
  is transactional there, so an interrupted migration leaves nothing behind.
- SQLite: ``flock`` on a lock file next to the database file (it waits as long as needed,
  where SQLite's busy timeout would give up), and the migration runs inside
  ``BEGIN IMMEDIATE ... COMMIT`` so it is all-or-nothing there too.

A database created before migrations existed (``metadata.create_all``: Spool's tables, no
``alembic_version``) is stamped at the baseline revision when its tables are the baseline's,
then upgraded like any other.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

MIGRATIONS_DIR = Path(__file__).resolve().parent
BASELINE = "0001"  # the schema as metadata.create_all made it before migrations existed
VERSION_TABLE = "alembic_version"
# One fixed key for every Spool process migrating the same PostgreSQL database.
ADVISORY_LOCK_KEY = int.from_bytes(b"spoolmig", "big")
# Alembic runs env.py through a module-level `context` proxy: one command per process at a time.
_alembic_in_use = threading.RLock()
# A table as the baseline check sees it: sorted (column, nullable) pairs and primary key.
TableShape = tuple[tuple[tuple[str, bool], ...], tuple[str, ...]]


class SchemaError(RuntimeError):
    """The database schema is not one this code can use or migrate; the message says why."""


@dataclass(frozen=True)
class MigrationResult:
    before: str | None  # None: no migration history (empty, or tables from before migrations)
    after: str
    stamped: bool = False  # tables from before migrations were stamped at the baseline

    def describe(self) -> str:
        if self.stamped:
            stamped = f"stamped at {BASELINE} (tables from before migrations)"
            return stamped if self.after == BASELINE else f"{stamped}, upgraded to {self.after}"
        if self.before == self.after:
            return f"already at head {self.after}"
        return f"upgraded from {revision_label(self.before)} to {self.after}"


def revision_label(revision: str | None) -> str:
    return revision if revision is not None else "<none>"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without an alembic.ini; env.py uses ``connection`` if given."""
    config = Config()
    # Config values go through ConfigParser interpolation, where '%' is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@cache
def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    if head is None:  # only a broken install: the package ships its revisions
        raise SchemaError(f"no migration revisions found in {MIGRATIONS_DIR}")
    return head


def is_known_revision(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The database's revision, in one query; None when it has no migration history.

    Connecting is outside the ``try``: an unreachable database raises, it is not "no history".
    """
    with engine.connect() as conn:
        try:
            rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
            return _single_head(list(rows))
        except (ProgrammingError, OperationalError):
            pass  # most likely no version table yet; the statement's transaction is void
    # Look properly, on a fresh connection: a missing table is None, other errors raise.
    with engine.connect() as conn:
        return revision_in_transaction(conn)


def _single_head(revisions: list[str]) -> str | None:
    if len(revisions) > 1:
        raise SchemaError(
            f"database has several schema revisions {sorted(revisions)}; "
            "Spool's migrations are one linear history"
        )
    return revisions[0] if revisions else None


def revision_in_transaction(conn: Connection) -> str | None:
    """Like ``current_revision`` but safe inside a transaction (checks the table first)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> MigrationResult:
    """Bring the database to the newest revision, under the migration lock."""
    head = head_revision()
    with _alembic_in_use, locked_transaction(engine) as conn:
        before = revision_in_transaction(conn)
        if before == head:
            return MigrationResult(before, head)
        stamped = before is None and has_baseline_tables(conn)
        if stamped:
            require_baseline_shape(conn)
            command.stamp(alembic_config(conn), BASELINE)
        elif before is not None and not is_known_revision(before):
            raise SchemaError(
                f"database schema is at revision {before}, which this version "
                f"of Spool does not know (its newest is {head}): was it migrated "
                "by newer code?"
            )
        command.upgrade(alembic_config(conn), "head")
        return MigrationResult(before, revision_in_transaction(conn) or head, stamped)


@contextlib.contextmanager
def locked_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction, held alone among Spool's migrating processes, committed on success."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Transaction-scoped: released by the commit or rollback, even if we crash.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
            yield conn
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        # An in-memory SQLite database lives in one process: nobody to race with.
        with engine.begin() as conn:
            yield conn
        return
    with (
        file_lock(sqlite_lock_path(database)),
        sqlite_immediate_engine(engine.url) as locked,
        locked.begin() as conn,
    ):
        yield conn


def sqlite_lock_path(database: str) -> Path:
    path = Path(database)
    return path.with_name(path.name + ".migrate-lock")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        # Released when the file is closed, also when the process dies.
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def sqlite_immediate_engine(url: sa.URL) -> Iterator[Engine]:
    """An engine whose transactions are real SQLite transactions, DDL included.

    Python's sqlite3 module only opens a transaction before INSERT/UPDATE/DELETE, so DDL
    would commit statement by statement; taking over BEGIN makes the migration atomic.
    """
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"timeout": 30})

    def autocommit_driver(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    def begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", autocommit_driver)
    event.listen(engine, "begin", begin_immediate)
    try:
        yield engine
    finally:
        engine.dispose()


def has_baseline_tables(conn: Connection) -> bool:
    """Whether any of the baseline's tables exist: a database from before migrations."""
    return bool(set(sa.inspect(conn).get_table_names()) & set(baseline_shape()))


def require_baseline_shape(conn: Connection) -> None:
    expected = baseline_shape()
    found = table_shapes(conn, expected)
    for table, shape in expected.items():
        if found.get(table) != shape:
            raise SchemaError(
                f"database has Spool tables but no migration history, and they are not "
                f"revision {BASELINE}'s: {shape_difference(table, shape, found.get(table))}; "
                "fix the schema by hand, then run `python -m spool.migrate`"
            )


def shape_difference(table: str, expected: TableShape, found: TableShape | None) -> str:
    if found is None:
        return f"table {table} is missing"
    return f"table {table} has {format_shape(found)} where {BASELINE} has {format_shape(expected)}"


def format_shape(shape: TableShape) -> str:
    columns, primary_key = shape
    listed = ", ".join(f"{name}{'' if nullable else ' NOT NULL'}" for name, nullable in columns)
    return f"({listed}; PRIMARY KEY {', '.join(primary_key)})"


def table_shapes(conn: Connection, tables) -> dict[str, TableShape]:
    """Per table: its (column, nullable) pairs and primary key, read from the database.

    Types are left out on purpose: the baseline is read from SQLite and compared with
    PostgreSQL too, where the same declared type reflects differently.
    """
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    shapes = {}
    for table in tables:
        if table not in existing:
            continue
        columns = tuple(
            sorted((c["name"], bool(c["nullable"])) for c in inspector.get_columns(table))
        )
        primary_key = tuple(sorted(inspector.get_pk_constraint(table)["constrained_columns"]))
        shapes[table] = (columns, primary_key)
    return shapes


@cache
def baseline_shape() -> dict[str, TableShape]:
    """The baseline's tables as revision 0001 itself creates them, in a scratch database.

    Reading them from the migration, rather than from a copy kept beside it, means there is
    one definition of the baseline schema.
    """
    engine = sa.create_engine("sqlite://")
    try:
        with _alembic_in_use, engine.begin() as conn:
            command.upgrade(alembic_config(conn), BASELINE)
            tables = [t for t in sa.inspect(conn).get_table_names() if t != VERSION_TABLE]
            return table_shapes(conn, tables)
    finally:
        engine.dispose()
