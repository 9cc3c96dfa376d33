"""The real API served by uvicorn on a free local port, for tests that need HTTP itself
(schemathesis, ffprobe reading HLS over HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import uvicorn

from api import create_app
from devstack.proc import free_port
from spool.config import Settings


@contextlib.asynccontextmanager
async def live_api(settings: Settings, client, wrap=None) -> AsyncIterator[str]:
    """The API for ``settings`` on a free local port, sharing ``client``, served wrapped in
    ``wrap`` if given (an ASGI middleware); yields its base URL and stops the server on exit."""
    port = free_port()
    app = create_app(settings, client=client)
    server = uvicorn.Server(
        uvicorn.Config(wrap(app) if wrap else app, host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        assert not serving.done(), "uvicorn stopped before it served"
        assert time.monotonic() < deadline, "uvicorn did not start listening"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
