"""The rule for real services: in CI (CI=true) a test whose service is missing fails;
elsewhere it skips, saying why. A test that needs a service never passes without it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Protocol, TypeVar

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(reason: str) -> None:
    """Fail in CI, skip elsewhere (never returns)."""
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


class Server(Protocol):
    """What devstack's servers have in common: started, then stopped (a stop is safe on a
    server that never started, or started only in part)."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


@contextlib.contextmanager
def started(server: S, what: str) -> Iterator[S]:
    """``server`` started, and stopped on leaving. One that does not start is stopped at once
    (whatever it had started goes) and is a missing service: "``what`` did not start: …"."""
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        server.stop()
        service_missing(f"{what} did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()
