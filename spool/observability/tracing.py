"""OpenTelemetry tracing: HTTP request → start workflow → workflow → each activity.

Off unless an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the OpenTelemetry SDK's own variables, which also set
headers, timeouts and certificates); then spans go out over OTLP/HTTP in batches. Temporal's
TracingInterceptor carries the context in workflow and activity headers, so a trace crosses
processes: the API's request span is the parent of StartWorkflow, which is the parent of the
workflow's and activities' spans on whichever worker runs them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from spool.observability.metrics import HTTP_SECONDS

# The SDK, the exporter, the propagators and Temporal's interceptor are imported only once
# tracing is on: every command-line start would pay for them otherwise.
if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from temporalio.contrib.opentelemetry import TracingInterceptor

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Scrapes and probes every few seconds would bury the traces that matter.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_provider: TracerProvider | None = None
_lock = threading.Lock()


def otlp_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    """The configured OTLP endpoint, unless the OpenTelemetry SDK is switched off."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    return next((env[name] for name in ENDPOINT_VARIABLES if env.get(name, "").strip()), None)


def setup_tracing(service: str, exporter: SpanExporter | None = None) -> Tracer | None:
    """Start exporting spans (once per process); the tracer, or None when tracing is off.

    ``exporter`` replaces OTLP (tests hand in an in-memory one and get every span at once).
    """
    global _provider
    with _lock:
        if _provider is None:
            if exporter is None and otlp_endpoint() is None:
                return None
            _provider = _new_provider(service, exporter)
        return current_tracer()


def _new_provider(service: str, exporter: SpanExporter | None) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME (and OTEL_RESOURCE_ATTRIBUTES) win over the process's default name.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Libraries that ask the global API for a tracer export through the same pipeline.
    trace.set_tracer_provider(provider)
    return provider


def current_tracer() -> Tracer | None:
    return _provider.get_tracer("spool") if _provider is not None else None


def stop_tracing() -> None:
    """Flush what is buffered and stop; entry points that leave through os._exit need this."""
    global _provider
    with _lock:
        provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()


def tracing_interceptors() -> list[TracingInterceptor]:
    """Temporal's tracing interceptor when tracing is on: spans for client calls, workflows
    and activities, carried between processes in Temporal headers."""
    tracer = current_tracer()
    if tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer)]


class HttpTelemetryMiddleware:
    """ASGI middleware: a server span per request (continuing a caller's ``traceparent``)
    that is current while the handler runs, and the request duration histogram."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_and_note_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        with self._span(scope) as span:
            try:
                await self.app(scope, receive, send_and_note_status)
            finally:
                route = route_template(scope)
                HTTP_SECONDS.labels(
                    method=method_label(scope), route=route, status=str(status["code"])
                ).observe(time.perf_counter() - started)
                if span is not None:
                    _describe(span, scope, route, status["code"])

    @contextlib.contextmanager
    def _span(self, scope: dict) -> Iterator[trace.Span | None]:
        tracer = current_tracer()
        if tracer is None or scope["path"] in UNTRACED_PATHS:
            yield None
            return
        from opentelemetry import propagate

        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        with tracer.start_as_current_span(
            scope["method"], context=propagate.extract(carrier), kind=SpanKind.SERVER
        ) as span:
            yield span


def method_label(scope: dict) -> str:
    """The request's method, or ``other``: a client picks the method, and every distinct
    label value would be a new series."""
    method = scope["method"]
    return method if method in KNOWN_METHODS else "other"


def route_template(scope: dict) -> str:
    """The matched route's template (``/v1/videos/{video_id}``), never the raw path: raw
    paths would make a series per id. Unmatched requests share one label."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template or "unmatched"


def _describe(span: trace.Span, scope: dict, route: str, status: int) -> None:
    span.update_name(f"{scope['method']} {route}")
    span.set_attribute("http.request.method", scope["method"])
    span.set_attribute("http.route", route)
    span.set_attribute("url.path", scope["path"])
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
