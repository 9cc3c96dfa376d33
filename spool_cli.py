"""The ``spool`` command: one entry point for the job commands, the worker and migrations.

    spool blog|video|status|wait|cancel …   the same as ``python starter.py …``
    spool worker [--queue …]                the same as ``python worker.py …``
    spool migrate [--check]                 the same as ``python -m spool.migrate …``
    spool api                               the same as ``python -m api``
    spool followers-import FILE             the same as ``python -m spool.follower_import``

``starter.py`` and ``worker.py`` stay the documented entry points of a source checkout; this
command is what an installed distribution (the container image, ``pip install``) puts on PATH.
Each sub-command's own ``--help`` describes its options. It stands beside them at the top, not
in the ``spool`` package: it imports every entry point, and the package imports none.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

JOB_COMMANDS = ("blog", "video", "status", "wait", "cancel")
USAGE = (
    "usage: spool {blog,video,status,wait,cancel,worker,migrate,api,followers-import} …\n"
    "  blog FILE | video FILE   start a job (add --wait to follow it)\n"
    "  status|wait|cancel JOB   follow or stop a job\n"
    "  worker                   poll task queues (see spool worker --help)\n"
    "  migrate                  bring the database schema up to date\n"
    "  api                      serve the HTTP API\n"
    "  followers-import FILE    store follows from JSON lines (a migration)\n"
)


def _job(argv: list[str]) -> int:
    import starter

    return starter.main(argv)


def _worker(argv: list[str]) -> int:
    import worker

    return worker.main(argv)


def _migrate(argv: list[str]) -> int:
    from spool import migrate

    return migrate.main(argv)


def _followers_import(argv: list[str]) -> int:
    from spool import follower_import

    return follower_import.main(argv)


def _api(argv: list[str]) -> int:
    from api.__main__ import main as api_main

    if argv:
        print(
            "spool api: takes no arguments (configure with SPOOL_API_* settings)", file=sys.stderr
        )
        return 2
    api_main()
    return 0


def command_for(name: str) -> Callable[[list[str]], int] | None:
    """The function that runs sub-command ``name`` with the rest of the arguments."""
    if name in JOB_COMMANDS:
        return lambda rest: _job([name, *rest])
    return {
        "worker": _worker,
        "migrate": _migrate,
        "api": _api,
        "followers-import": _followers_import,
    }.get(name)


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command = command_for(argv[0])
    if command is None:
        print(f"spool: unknown command {argv[0]!r}\n{USAGE}", end="", file=sys.stderr)
        return 2
    return command(argv[1:])


def main() -> None:
    """Console-script entry point: exits with the sub-command's own exit code."""
    from spool.temporal import exit_process

    exit_process(run(sys.argv[1:]))
