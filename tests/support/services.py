"""The rule for real services: in CI (CI=true) a test whose service is missing fails;
elsewhere it skips, saying why. A test that needs a service never passes without it."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(reason: str) -> None:
    """Fail in CI, skip elsewhere (never returns)."""
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)
