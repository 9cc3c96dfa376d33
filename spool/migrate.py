"""`python -m spool.migrate`: bring the configured database's schema to the newest revision.

The database is the one Settings configure (SPOOL_DATABASE_URL, else the SQLite file in
SPOOL_DATA_DIR). Safe to run from several places at once: the migration is locked.

Exit codes: 0 at head (migrated or already), 3 with ``--check`` when the schema is not at head,
4 when the database cannot be reached or migrated. Output is one line.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError

from spool.config import Settings, get_settings
from spool.db import make_engine, migrations, prepare_database_url

EXIT_OK = 0
EXIT_NOT_AT_HEAD = 3
EXIT_ERROR = 4


class MigrateError(RuntimeError):
    """The database could not be reached or migrated; the message is one line."""


def migrate(settings: Settings) -> str:
    """Upgrade to head under the migration lock; the line that says from where to where."""
    with database(settings) as engine:
        result = migrations.upgrade_to_head(engine)
    return f"spool.migrate: {display_url(settings.resolved_database_url)} {result.describe()}"


def check(settings: Settings) -> tuple[bool, str]:
    """Whether the schema is at head, and the line that says so."""
    with database(settings) as engine:
        current = migrations.current_revision(engine)
        head = migrations.head_revision()
    where = display_url(settings.resolved_database_url)
    if current == head:
        return True, f"spool.migrate: {where} is at head {head}"
    return False, (
        f"spool.migrate: {where} is at revision {migrations.revision_label(current)}, "
        f"expected {head}: run `python -m spool.migrate`"
    )


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Engine]:
    """An engine for the configured database; any failure becomes a one-line MigrateError."""
    url = settings.resolved_database_url
    engine = None
    try:
        engine = make_engine(prepare_database_url(settings))
        yield engine
    except Exception as exc:
        raise MigrateError(
            f"spool.migrate: {display_url(url)}: {one_line(error_text(exc))}"
        ) from exc
    finally:
        if engine is not None:
            engine.dispose()


def error_text(exc: BaseException) -> str:
    # SQLAlchemy's own message adds the SQL and a documentation link; the driver's is the news.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return str(exc) or type(exc).__name__


def one_line(text: str) -> str:
    return " ".join(text.split())


def display_url(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spool.migrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"change nothing; exit {EXIT_NOT_AT_HEAD} if not at head",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.check:
            at_head, line = check(settings)
            print(line, file=sys.stdout if at_head else sys.stderr)
            return EXIT_OK if at_head else EXIT_NOT_AT_HEAD
        print(migrate(settings))
        return EXIT_OK
    except MigrateError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
