"""A large fan-out walked by a process of its own.

A fan-out is CPU work in Python (ledger rows, payloads, deliveries) for as long as the
audience is large. Run on a thread of the pipeline worker, it shares one interpreter lock
with the workflows that worker runs: their tasks and the status queries wait behind it. So an
audience over ``SPOOL_FANOUT_CHILD_ABOVE`` followers is walked by ``python -m
spool.fanout_child``, a child of the activity that started it: it reads its settings and the
event from standard input, runs ``fan_out_to_followers`` with its own database engine and
notifier, and writes each heartbeat, then the outcome, as a JSON line. The activity passes the
heartbeats on, so a retried attempt resumes from the child's cursor as from its own; a cancel
kills the child between two of its lines; the child dies with the worker (even by SIGKILL).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr
from pydantic_core import to_jsonable_python

from spool.config import Settings
from spool.fanout import Cursor, Event, FanOutCancelled, FanOutHooks, FanOutOutcome
from spool.process import with_parent_death

# How often the activity looks at its cancel while the child is quiet.
POLL_SECONDS = 0.5
# Bytes read from the child at a time: many lines' worth, each handled as soon as it is read.
READ_BYTES = 65_536
# The tail of the child's standard error carried in a failure's message.
ERROR_TAIL = 2_000


class FanOutChildFailed(RuntimeError):
    """The child ended without an outcome: retried like any failed attempt, from its
    last heartbeated cursor."""


def settings_payload(settings: Settings) -> dict[str, Any]:
    """Every setting, secrets included (the child needs the database password and the SMTP
    login); sent over a pipe, never through the environment or a command line."""
    return to_jsonable_python({name: _revealed(value) for name, value in settings})


def _revealed(value: Any) -> Any:
    """``value`` with every secret in it (a key list holds several) as its plain text."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list | tuple):
        return [_revealed(item) for item in value]
    if isinstance(value, dict):
        return {key: _revealed(item) for key, item in value.items()}
    return value


def _child_env() -> dict[str, str]:
    """The parent's environment, with this checkout's spool first on the path."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def fan_out_in_child(
    settings: Settings,
    event: Event,
    author_id: str,
    hooks: FanOutHooks,
    cursor: Cursor,
) -> FanOutOutcome:
    """The fan-out of ``event`` to ``author_id``'s followers from ``cursor``, walked by a
    child process; ``hooks`` receive its heartbeats and may cancel it."""
    hooks.beat(cursor.details())  # at once: the child takes a moment to start
    request = {
        "settings": settings_payload(settings),
        "event": {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "payload": event.payload,
        },
        "author_id": author_id,
        "resumed_from": [cursor.details()],
    }
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        child = subprocess.Popen(
            with_parent_death([sys.executable, "-m", "spool.fanout_child"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=_child_env(),
        )
        try:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(json.dumps(request).encode())
            child.stdin.close()
            outcome = _follow(child.stdout, hooks, event)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        if outcome is None:
            errors.seek(0)
            raise FanOutChildFailed(
                f"{event.event_id}: the fan-out process ended (exit {child.returncode}) "
                f"without finishing: {errors.read()[-ERROR_TAIL:]}"
            )
        return outcome


def _follow(out: IO[bytes], hooks: FanOutHooks, event: Event) -> FanOutOutcome | None:
    """Pass the child's heartbeats on until its outcome (None: it ended without one).

    Read from the pipe itself, not line by line through a buffered reader: a line the reader
    had buffered would wait, unseen by ``select``, until the child wrote again, and the
    cursor handed on would be one heartbeat late."""
    pending = b""
    while True:
        if hooks.cancelled():
            raise FanOutCancelled(f"{event.event_id}: cancelled")
        ready, _, _ = select.select([out], [], [], POLL_SECONDS)
        if not ready:
            continue
        chunk = os.read(out.fileno(), READ_BYTES)
        if not chunk:
            return None
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            outcome = _passed_on(json.loads(line), hooks)
            if outcome is not None:
                return outcome


def _passed_on(message: dict[str, Any], hooks: FanOutHooks) -> FanOutOutcome | None:
    """A heartbeat passed on (None), or the outcome."""
    if "beat" in message:
        hooks.beat(message["beat"])
    done = message.get("done")
    if done is None:
        return None
    return FanOutOutcome(
        recipients=done["recipients"],
        newly_created=done["newly_created"],
        cursor=Cursor.from_details([done["cursor"]]) or Cursor(),
    )


def _run(request: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    from spool.db import get_engine
    from spool.fanout import fan_out_to_followers
    from spool.notify import make_notifier

    settings = Settings(**request["settings"])
    resumed: Sequence[Any] = request["resumed_from"]
    outcome = fan_out_to_followers(
        get_engine(settings),
        make_notifier(settings),
        Event(**request["event"]),
        request["author_id"],
        FanOutHooks(beat=lambda details: emit({"beat": details}), resumed_from=resumed),
        page_size=settings.fanout_page_size,
    )
    emit(
        {
            "done": {
                "recipients": outcome.recipients,
                "newly_created": outcome.newly_created,
                "cursor": outcome.cursor.details(),
            }
        }
    )


def main() -> int:
    def emit(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    _run(json.load(sys.stdin), emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
