"""The one way Spool's processes connect to Temporal: ``connect(settings)``.

Where and how to connect is merged from the temporal CLI's configuration and Spool's
settings (``spool.temporal.plan``). A failed connection raises
:class:`TemporalConnectError`, whose message is one line that names the problem
(``spool.temporal.failures``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NoReturn

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from spool import observability
from spool.config import Settings
from spool.temporal.failures import TemporalConnectError, diagnose_failure
from spool.temporal.plan import connection_plan

__all__ = ["TemporalConnectError", "connect", "exit_process"]

RETRY_INTERVAL_SECONDS = 0.3


async def connect(settings: Settings, *, wait_seconds: float = 0.0) -> Client:
    """Connect to Temporal; with wait_seconds, keep trying while the server starts up.

    Only failures that waiting can cure (refused, unreachable, proxy without upstream) are
    retried; a certificate or configuration problem fails at once.
    """
    plan = connection_plan(settings)
    # The process's metrics runtime and, when tracing is on, the tracing interceptor
    # (docs/observability.md); workers built from this client inherit it.
    kwargs = {**plan.connect_kwargs(), **observability.client_options()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            client = await Client.connect(**kwargs)
            # A frontend that accepts connections may still be loading the namespace.
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
            message, retryable = diagnose_failure(str(exc), plan)
            if not retryable or loop.time() >= deadline:
                raise TemporalConnectError(message) from exc
            await asyncio.sleep(RETRY_INTERVAL_SECONDS)


def exit_process(code: int) -> NoReturn:
    """Flush and exit without interpreter teardown.

    After a Temporal client has been used, the SDK's native runtime can abort during
    interpreter teardown (PyGILState_Release, sdk-python#300), turning a clean exit into a
    crash; command-line entry points end here instead.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
