"""Threads of their own for the deliveries of async activities."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class DeliveryPool:
    """Where async activities run ``notify_once``: threads of their own, made on first use.

    A delivery may take up to ``webhook_deadline_seconds`` per destination; run on the event
    loop's default executor (``asyncio.to_thread``), receivers that hold their answers would
    take the threads every storage, database and probe call of the worker needs. Here they
    can hold at most ``threads`` threads, and the rest of the worker goes on."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="delivery")
            return self._executor

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a delivery thread, in this task's context (log fields)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool(), call)
