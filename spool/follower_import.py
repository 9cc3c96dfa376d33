"""Import follows from JSON lines, streamed: ``python -m spool.follower_import FILE`` (or
``spool followers-import FILE``; ``-`` reads standard input).

Each line is ``{"author_id": "…", "follower_id": "…"}``. Lines are stored in chunks as they
are read, so a file of any size takes one chunk's memory; existing follows are skipped, so
an import stopped half-way (or by a bad line, named with its number) is finished by running
it again. Exit codes: 0 done, 2 a bad line or file, 4 the database unreachable.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

from sqlalchemy.exc import OperationalError

from spool.config import Settings
from spool.db import get_engine
from spool.db.followers import import_follows
from spool.service.followers import InvalidFollow, parse_follow_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spool followers-import", description=__doc__)
    parser.add_argument("file", help="JSON lines, one follow a line; - for standard input")
    args = parser.parse_args(argv)
    try:
        source = (
            nullcontext(sys.stdin) if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115 - closed by the with
        )
        with source as lines:
            created = import_follows(get_engine(Settings()), parse_follow_lines(lines))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"spool followers-import: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    except InvalidFollow as exc:
        print(
            f"spool followers-import: {exc} (the lines before it are stored; fix the line "
            "and run again: stored follows are skipped)",
            file=sys.stderr,
        )
        return 2
    except OperationalError as exc:
        print(f"spool followers-import: database unavailable: {exc.orig}", file=sys.stderr)
        return 4
    print(f"{created} new follows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
