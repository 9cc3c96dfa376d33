"""Spool's database: SQLAlchemy Core, SQLite by default, PostgreSQL in production.

Every side effect that must happen once is written in the same transaction as a row under a
unique key (see DESIGN.md, rule 2); ``insert_ignore`` is how a second attempt finds the key and
does nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
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
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return engine


def get_engine(settings: Settings) -> Engine:
    """One engine per database URL per process, with the schema created on first use."""
    url = settings.resolved_database_url
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            engine = make_engine(url)
            create_schema(engine)
            _engines[url] = engine
        return engine


def create_schema(engine: Engine) -> None:
    # Importing the table modules registers their tables on `metadata`.
    from spool.db import blog, notifications, video  # noqa: F401

    metadata.create_all(engine, checkfirst=True)


def insert_ignore(engine_or_conn: Any, table: sa.Table):
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect."""
    dialect = engine_or_conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database dialect {dialect}")
    return insert(table).on_conflict_do_nothing()

