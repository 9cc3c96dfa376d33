"""Metrics, traces and logs for Spool's processes (see docs/observability.md).

- ``metrics``: Prometheus metrics, Spool's and the Temporal SDK's, on one ``/metrics``;
- ``tracing``: OpenTelemetry spans from the HTTP request through the workflow to each
  activity, exported over OTLP when configured;
- ``logs``: text or JSON lines carrying the job id and step;
- ``interceptors``: the worker side that records step durations and finished jobs.

A process sets up logging (``configure_logging``) and, before it connects, its metrics and
tracing (``start_worker_telemetry``, or ``asgi.instrument_app`` for the API);
``spool.temporal.connect`` then takes the runtime and the tracing interceptor from
``client_options``, and worker.py adds ``worker_interceptors`` to every worker.
"""

from __future__ import annotations

import logging
from http.server import ThreadingHTTPServer
from typing import Any

from spool.config import Settings, reveal
from spool.observability.logs import configure_logging
from spool.observability.metrics import install_sdk_metrics, sdk_metrics, serve_metrics
from spool.observability.tracing import setup_tracing, stop_tracing, tracing_interceptors

WORKER_SERVICE = "spool-worker"
log = logging.getLogger("spool.observability")


def client_options() -> dict[str, Any]:
    """Client.connect keywords: this process's runtime (if it exports metrics) and, when
    tracing is on, Temporal's tracing interceptor, which workers built from the client
    inherit."""
    sdk = sdk_metrics()
    return {
        "runtime": sdk.runtime if sdk is not None else None,
        "interceptors": tracing_interceptors(),
    }


def worker_interceptors() -> list[Any]:
    """Worker interceptors recording Spool's step durations and finished jobs."""
    from spool.observability.interceptors import SpoolMetricsInterceptor

    return [SpoolMetricsInterceptor()]


def shutdown() -> None:
    """Flush buffered spans; call before a process exits through os._exit."""
    stop_tracing()


def start_worker_telemetry(
    settings: Settings,
    metrics_port: int | None = None,
) -> ThreadingHTTPServer | None:
    """A worker's metrics endpoint (when a port is configured) and tracing, before it
    connects; the endpoint's server, or None when metrics are off.

    ``metrics_port`` (``--metrics-port``) wins over SPOOL_METRICS_PORT; 0 = any free port.
    """
    port = settings.metrics_port if metrics_port is None else metrics_port
    setup_tracing(WORKER_SERVICE)
    if port is None:
        return None
    if not 0 <= port <= 65535:
        raise ValueError(
            f"metrics port must be 0..65535 (0 = any free port), not {port} "
            "(--metrics-port or SPOOL_METRICS_PORT)"
        )
    try:
        server = serve_metrics(settings.metrics_host, port, reveal(settings.metrics_token))
    except OSError as exc:
        raise RuntimeError(
            f"cannot serve metrics on {settings.metrics_host}:{port}: {exc.strerror or exc}"
        ) from None
    install_sdk_metrics()
    host, bound = server.server_address[:2]
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return server


__all__ = [
    "client_options",
    "configure_logging",
    "shutdown",
    "start_worker_telemetry",
    "worker_interceptors",
]
