"""Waiting on a condition, never on the clock: the deadline only turns a hang into a
failure, however fast or slow the machine is."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable


async def eventually(
    check: Callable[[], object], what: str, within: float = 120.0, every: float = 0.1
):
    """check()'s first truthy value (check may be async); AssertionError naming ``what``
    after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {within:.0f} s"
        await asyncio.sleep(every)
