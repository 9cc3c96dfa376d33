"""The API's instrumentation: ``instrument_app(app)`` adds ``/metrics`` and the middleware
that traces each request and times it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from spool.observability.metrics import CONTENT_TYPE, install_sdk_metrics, render
from spool.observability.tracing import HttpTelemetryMiddleware, setup_tracing

SERVICE = "spool-api"


def instrument_app(app: FastAPI, dependencies: Sequence[Any] = ()) -> None:
    """Metrics and tracing for the API process; ``dependencies`` guard /metrics (who may
    read it is the API's business: api/deps.py).

    The SDK metrics runtime is created here, before the lifespan connects the API's Temporal
    client, so that client's request metrics are on the same /metrics.
    """
    install_sdk_metrics()
    setup_tracing(SERVICE)
    app.add_middleware(HttpTelemetryMiddleware)

    @app.get("/metrics", tags=["health"], include_in_schema=False, dependencies=list(dependencies))
    async def metrics() -> Response:
        """Prometheus metrics: Spool's (HTTP requests, ...) and the Temporal client's."""
        # render() reads the SDK exporter over loopback HTTP: keep it off the event loop.
        return Response(await asyncio.to_thread(render), media_type=CONTENT_TYPE)
