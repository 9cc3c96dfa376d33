"""Prometheus metrics: Spool's own, plus the Temporal SDK's, on one ``/metrics`` per process.

Spool's series live in prometheus_client's default registry. The SDK's (worker task slots,
poll and schedule-to-start latency per task queue and activity type, request counts, and
``spool_jobs_total`` recorded through the workflow metric meter, which skips replays) come
from the Rust core's own Prometheus exporter. That exporter must bind a port of its own, so
it listens on a free loopback port and every scrape of the process's one endpoint fetches its
text and appends it: an operator scrapes one address per process.
"""

from __future__ import annotations

import functools
import hmac
import logging
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar, cast

from prometheus_client import (
    REGISTRY,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

log = logging.getLogger("spool.observability")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Steps run from a few milliseconds (a database row) to hours (a 4 h 1080p encode).
STEP_BUCKETS = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    4 * 3600,
)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SDK_SCRAPE_TIMEOUT_SECONDS = 5.0
BIND_ATTEMPTS = 5

STEP_SECONDS = Histogram(
    "spool_step_duration_seconds",
    "How long one attempt of a step (activity) ran, by step, activity type, queue and outcome.",
    ["step", "activity_type", "task_queue", "outcome"],
    buckets=STEP_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "spool_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, failed (retried), refused (never sent).",
    ["outcome"],
)
HTTP_SECONDS = Histogram(
    "spool_http_request_duration_seconds",
    "API requests by method, route template and status code.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)

# Recorded from workflows through workflow.metric_meter() (replay-safe), so it is exported by
# the SDK runtime with namespace, task_queue and workflow_type labels added.
JOBS_METRIC = "spool_jobs_total"
JOBS_HELP = "Jobs (workflow runs) that reached a final state, by kind and state."

F = TypeVar("F", bound=Callable[..., Any])

# A *_created series per counter and histogram doubles the output and no dashboard reads it.
disable_created_metrics()


def count_outcomes(
    counter: Counter, failures: dict[type[BaseException], str], success: str = "delivered"
) -> Callable[[F], F]:
    """Decorate a call so each one counts once under its outcome label.

    An exception listed in ``failures`` counts under its label, any other as ``error``; the
    exception itself is re-raised untouched.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                counter.labels(outcome=_failure_label(exc, failures)).inc()
                raise
            counter.labels(outcome=success).inc()
            return result

        return cast(F, counted)

    return decorate


def _failure_label(exc: BaseException, failures: dict[type[BaseException], str]) -> str:
    for kind, label in failures.items():
        if isinstance(exc, kind):
            return label
    return "error"


@dataclass(frozen=True)
class SdkMetrics:
    """The process's Temporal runtime and where its Prometheus exporter listens."""

    runtime: Runtime
    address: str  # host:port on loopback

    def scrape(self) -> bytes:
        """The SDK exporter's text; empty (and logged) if it cannot be read right now."""
        url = f"http://{self.address}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=SDK_SCRAPE_TIMEOUT_SECONDS) as answer:
                return answer.read()
        except OSError as exc:
            log.warning("Temporal SDK metrics at %s unreadable: %s", url, exc)
            return b""


_sdk: SdkMetrics | None = None
_sdk_lock = threading.Lock()


def sdk_metrics() -> SdkMetrics | None:
    """The process's SDK metrics, if install_sdk_metrics() has run."""
    return _sdk


def install_sdk_metrics() -> SdkMetrics:
    """Create (once per process) the Temporal runtime whose metrics /metrics serves.

    Clients connected afterwards through spool.temporal.connect use it, and so do their
    workers. Durations stay in milliseconds, as Temporal's published SDK dashboards expect.
    """
    global _sdk
    with _sdk_lock:
        if _sdk is None:
            _sdk = _start_sdk_exporter()
            log.info("Temporal SDK metrics exporter on %s (served through /metrics)", _sdk.address)
        return _sdk


def _start_sdk_exporter() -> SdkMetrics:
    # The core binds the port itself and reports no chosen port back: pick a free one and
    # try again in the rare case another process takes it in between.
    last: Exception | None = None
    for _ in range(BIND_ATTEMPTS):
        address = f"127.0.0.1:{_free_loopback_port()}"
        try:
            runtime = Runtime(
                telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
            )
        except ValueError as exc:  # "Address already in use"
            last = exc
            continue
        return SdkMetrics(runtime, address)
    raise RuntimeError(f"cannot start the Temporal SDK metrics exporter: {last}")


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render() -> bytes:
    """Everything this process exports, in Prometheus text format."""
    own = generate_latest(REGISTRY)
    sdk = _sdk.scrape() if _sdk is not None else b""
    if own and not own.endswith(b"\n"):
        own += b"\n"
    return own + sdk


class _MetricsHandler(BaseHTTPRequestHandler):
    token: str | None = None  # when set, scrapes must send it as a bearer token

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        if self.token and not _bearer_is(self.headers.get("authorization", ""), self.token):
            self.send_error(401, "send the metrics token: Authorization: Bearer <token>")
            return
        body = render()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per scrape would drown the worker's log


def _bearer_is(authorization: str, token: str) -> bool:
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


def serve_metrics(host: str, port: int, token: str | None = None) -> ThreadingHTTPServer:
    """A worker's /metrics on host:port (0 = any free port) from a daemon thread; with a
    ``token``, only for scrapes that send it.

    The bound address is ``server.server_address``; ``server.shutdown()`` stops it.
    """
    handler = type("MetricsHandler", (_MetricsHandler,), {"token": token})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
