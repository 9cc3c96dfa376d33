"""Spool's database: SQLAlchemy Core, SQLite by default, PostgreSQL in production.

Every side effect that must happen once is written in the same transaction as a row under a
unique key (docs/ARCHITECTURE.md, rule 2); ``insert_ignore`` is how a second attempt finds the
key and does nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from spool.config import Settings

metadata = sa.MetaData()

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return engine


def get_engine(settings: Settings) -> Engine:
    """One engine per database URL per process, its schema checked (or migrated) on first use."""
    url = settings.resolved_database_url
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(prepare_database_url(settings))
            try:
                ensure_schema(engine, settings)
            except BaseException:
                engine.dispose()
                raise
            _engines[url] = engine
        return engine


def prepare_database_url(settings: Settings) -> str:
    """The configured URL, with the data directory created for the default SQLite file."""
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return url


def ensure_schema(engine: Engine, settings: Settings) -> None:
    """Make sure the schema is at the newest migration before the process uses it.

    At head this is one query. Otherwise the database is migrated under the migration lock
    when ``db_auto_migrate`` allows it; when not (production migrates once, before anything
    starts) the process refuses to run against a schema it was not written for.
    """
    from spool.db import migrations

    current = migrations.current_revision(engine)
    head = migrations.head_revision()
    if current == head:
        return
    if not settings.db_auto_migrate:
        raise migrations.SchemaError(
            f"database schema is at revision {migrations.revision_label(current)}, expected "
            f"{head}: run `python -m spool.migrate`"
        )
    migrations.upgrade_to_head(engine)


def load_tables() -> None:
    """Import the table modules, which registers their tables on ``metadata``."""
    from spool.db import blog, deletions, notifications, uploads, video  # noqa: F401


def create_schema(engine: Engine) -> None:
    """``metadata.create_all``: the schema as the code declares it, without migrations.

    Processes do not use it (see ``ensure_schema``); tests compare the migrations with it.
    """
    load_tables()
    metadata.create_all(engine, checkfirst=True)


def dialect_insert(dialect: str):
    """The dialect's ``insert``, which takes ON CONFLICT (SQLite and PostgreSQL)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database dialect {dialect}")
    return insert


def insert_ignore(dialect: Any, table: sa.Table):
    """INSERT ... ON CONFLICT DO NOTHING for a dialect: an engine's or a connection's, or one
    named (to build a statement once per dialect)."""
    name = dialect if isinstance(dialect, str) else dialect.dialect.name
    return dialect_insert(name)(table).on_conflict_do_nothing()
