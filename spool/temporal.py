"""The one way Spool's processes connect to Temporal."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NoReturn

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from spool.config import Settings


async def connect(settings: Settings, *, wait_seconds: float = 0.0) -> Client:
    """Connect to Temporal; with wait_seconds, keep trying while the server starts up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            client = await Client.connect(
                settings.temporal_address, namespace=settings.temporal_namespace
            )
            # A frontend that accepts connections may still be loading the namespace.
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except Exception:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.3)


def exit_process(code: int) -> NoReturn:
    """Flush and exit without interpreter teardown.

    After a Temporal client has been used, the SDK's native runtime can abort during
    interpreter teardown (PyGILState_Release, sdk-python#300), turning a clean exit into a
    crash; command-line entry points end here instead.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
