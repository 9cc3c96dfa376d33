"""What an operator sees: /metrics of a worker and of the API, one trace from the HTTP request
to each activity, JSON log lines that carry the job id and step (docs/observability.md).

A real worker.py process (its own runtime, its own /metrics) runs a blog job for the metrics
and log tests; the trace test runs the API and a worker in this process so that an in-memory
exporter sees every span.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import io
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.common import RetryPolicy
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer, Worker

from api import create_app
from spool import observability, webhooks
from spool.config import Settings
from spool.models import Post
from spool.observability import logs, metrics, tracing
from spool.observability.interceptors import SpoolMetricsInterceptor
from spool.service.jobs import start_blog
from spool.temporal import connect
from tests.support.api import AUTH as API_AUTH
from tests.support.api import api_client, api_settings, assert_error
from tests.support.paths import HISTORIES, REPO
from tests.support.processes import spool_env
from tests.support.webhook_receiver import WebhookReceiver
from workflows.blog import BlogPublishWorkflow
from workflows.captions import CaptionsWorkflow
from workflows.deletion import VideoDeletionWorkflow
from workflows.housekeeping import SweepAbandonedWritesWorkflow, SweepExpiredUploadsWorkflow
from workflows.posts import PostWorkflow
from workflows.video import VideoPipelineWorkflow

pytestmark = pytest.mark.unit

API_KEY = "obs-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SECRET = webhooks.new_secret()
# Never allowed, whatever the settings: a delivery there is refused before any request.
REFUSED_SUBSCRIBER = "http://169.254.169.254/latest/hook"
WITHIN = 120.0  # generous: the machine is shared
METRICS_URL = re.compile(r"metrics on (http://\S+/metrics)")


def make_post(**overrides) -> Post:
    uid = uuid.uuid4().hex[:8]
    fields = dict(
        post_id=f"obs-{uid}",
        author_id=f"author-{uid}",
        title="Observed pipelines",
        body="Metrics, traces and logs for every step.",
        tags=["temporal"],
        version=1,
        published_at="2026-11-27T08:00:00+00:00",
        followers=["ana"],
    )
    fields.update(overrides)
    return Post(**fields)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text exposition (parsing it proves it is well formed)."""
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def values(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples called ``name`` whose labels include ``labels``."""
    return [
        value
        for sample, have, value in samples(text)
        if sample == name and labels.items() <= have.items()
    ]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain"), answer.headers
        return answer.read().decode()


async def scrape_until(url: str, ready) -> str:
    """Scrape until ``ready(text)`` holds; the last text either way."""
    deadline = time.monotonic() + WITHIN
    while True:
        text = await asyncio.to_thread(scrape, url)
        if ready(text) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.2)


# --- a worker process ------------------------------------------------------------------------


@dataclass
class WorkerRun:
    queue: str
    job_id: str
    metrics_url: str
    metrics: str  # scraped once the job had finished
    output: list[str]  # everything the worker wrote, stdout and stderr


def worker_env(settings: Settings, receiver: WebhookReceiver, **extra: str) -> dict[str, str]:
    return {
        **spool_env(settings),
        "SPOOL_NOTIFIER": "webhook",
        "SPOOL_WEBHOOK_SECRET": SECRET,
        "SPOOL_WEBHOOK_ALLOW_PRIVATE": "true",
        "SPOOL_WEBHOOK_URLS": json.dumps([receiver.url, REFUSED_SUBSCRIBER]),
        **extra,
    }


async def read_lines(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace").rstrip("\n"))


async def wait_for_line(output: list[str], proc, pattern: str) -> re.Match:
    deadline = time.monotonic() + WITHIN
    while True:
        for line in list(output):
            if found := re.search(pattern, line):
                return found
        assert proc.returncode is None, "worker exited:\n" + "\n".join(output)
        assert time.monotonic() < deadline, f"no {pattern!r} from the worker:\n" + "\n".join(output)
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def worker_process(env: dict[str, str], *args: str) -> AsyncIterator[tuple]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []
    reader = asyncio.create_task(read_lines(proc.stdout, output))
    try:
        yield proc, output
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), WITHIN)
        await asyncio.wait_for(reader, WITHIN)


@pytest.fixture(scope="module")
async def worker_run(tmp_path_factory, temporal_server, client) -> WorkerRun:
    """worker.py --metrics-port 0 with JSON logs runs one blog job; one webhook subscriber
    accepts the post's event and another is refused."""
    queue = f"obs-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        temporal_address=temporal_server.address,
        data_dir=tmp_path_factory.mktemp("obs") / "data",
        queue_pipeline=queue,
        queue_media=queue,
        queue_captions=queue,
    )
    with WebhookReceiver(SECRET) as receiver:
        # No sweep schedule: its first run would be one more activity on the queue counted.
        env = worker_env(
            settings,
            receiver,
            SPOOL_LOG_FORMAT="json",
            SPOOL_STORAGE_ABANDONED_WRITE_SECONDS="0",
            SPOOL_UPLOAD_SWEEP_SECONDS="0",
        )
        async with worker_process(env, "--metrics-port", "0") as (proc, output):
            url = (await wait_for_line(output, proc, METRICS_URL.pattern)).group(1)
            await wait_for_line(output, proc, "worker ready")
            job = await start_blog(client, settings, make_post())
            await asyncio.wait_for(client.get_workflow_handle(job.job_id).result(), WITHIN)
            text = await scrape_until(
                url,
                lambda t: (
                    values(t, "spool_jobs_total", kind="blog")
                    and values(t, "spool_webhook_deliveries_total", outcome="refused")
                ),
            )
        assert len(receiver.deliveries()) == 1
    return WorkerRun(queue, job.job_id, url, text, output)


@pytest.mark.orchestration
async def test_worker_metrics_show_queue_latency_slots_jobs_steps_and_webhooks(worker_run):
    text, queue = worker_run.metrics, worker_run.queue
    # The SDK's: backlog per queue (the signal for more workers), run time per activity
    # type, free slots.
    assert values(text, "temporal_activity_schedule_to_start_latency_count", task_queue=queue) == [
        3
    ]
    assert values(text, "temporal_workflow_task_schedule_to_start_latency_count", task_queue=queue)
    assert values(
        text,
        "temporal_activity_execution_latency_count",
        task_queue=queue,
        activity_type="notify_followers",
    ) == [1]
    assert values(
        text, "temporal_worker_task_slots_available", task_queue=queue, worker_type="ActivityWorker"
    )
    # Spool's: the finished job by kind and state, each step's duration, each delivery.
    assert values(
        text,
        "spool_jobs_total",
        kind="blog",
        state="ready",
        task_queue=queue,
        workflow_type="BlogPublishWorkflow",
    ) == [1]
    for step in ("index_post", "record_post_for_author", "notify_followers"):
        assert values(
            text,
            "spool_step_duration_seconds_count",
            step=step,
            activity_type=step,
            task_queue=queue,
            outcome="ok",
        ) == [1.0], step
    assert values(text, "spool_webhook_deliveries_total", outcome="delivered") == [1.0]
    assert values(text, "spool_webhook_deliveries_total", outcome="refused") == [1.0]


@pytest.mark.orchestration
async def test_worker_json_logs_carry_the_job_id_and_step(worker_run):
    lines = [line for line in worker_run.output if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records, "\n".join(worker_run.output)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in records)
    # Lines from the notify_followers activity, written by a plain module logger.
    from_step = [r for r in records if r.get("step") == "notify_followers"]
    assert {r["logger"] for r in from_step} >= {"spool.notify"}, records
    assert all(
        r["job_id"] == worker_run.job_id and r["activity_type"] == "notify_followers"
        for r in from_step
    )
    refused = [r for r in from_step if r["level"] == "WARNING"]
    assert refused and "refused" in refused[0]["message"]
    # Every line but the worker's plain stdout notices is JSON.
    plain = [line for line in worker_run.output if not line.startswith("{")]
    assert all(line.startswith("worker ready") for line in plain), plain


def test_workflow_log_records_carry_the_job_id():
    record = logging_record(
        "captions-available event not delivered",
        temporal_workflow={
            "workflow_id": "video-v1",
            "workflow_type": "VideoPipelineWorkflow",
            "run_id": "r1",
            "task_queue": "pipeline",
            "attempt": 1,
            "namespace": "default",
        },
    )
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["job_id"] == "video-v1" and line["workflow_type"] == "VideoPipelineWorkflow"
    assert "step" not in line and "temporal_workflow" not in line
    assert line["message"] == "captions-available event not delivered"


def test_json_mode_moves_temporal_details_from_the_message_to_fields(monkeypatch):
    root = logging.getLogger()
    # configure_logging replaces the root handlers: let it work on a copy, restored after.
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(activity.logger, "activity_info_on_message", True)
    logs.configure_logging("json")
    stream = io.StringIO()
    root.handlers[-1].setStream(stream)
    info = ActivityEnvironment().info
    ActivityEnvironment().run(lambda: activity.logger.warning("source probed"))
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "source probed", line  # no "({'activity_id': ...})" appended
    assert (line["job_id"], line["step"]) == (info.workflow_id, info.activity_id)


def logging_record(message: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord(
        "temporalio.workflow", logging.WARNING, __file__, 1, message, None, None
    )
    record.__dict__.update(extra)
    return record


@pytest.mark.orchestration
async def test_a_taken_metrics_port_is_one_clear_error(settings, task_queue):
    with socket.socket() as taken, WebhookReceiver(SECRET) as receiver:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with worker_process(worker_env(settings, receiver), "--metrics-port", str(port)) as (
            proc,
            output,
        ):
            code = await asyncio.wait_for(proc.wait(), WITHIN)
    await asyncio.sleep(0)  # let the reader take the last line
    assert code == 1, output
    assert f"worker: cannot serve metrics on 127.0.0.1:{port}: Address already in use" in (
        output
    ), output


@pytest.mark.orchestration
def test_refused_deliveries_are_counted(settings):
    before = values_now("spool_webhook_deliveries_total", outcome="refused")
    delivery = webhooks.Delivery(
        url="http://127.0.0.1:9/hook", msg_id="msg_x", event_type="post.published", payload={}
    )
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.send(settings, delivery)  # no secret configured: refused, never sent
    assert values_now("spool_webhook_deliveries_total", outcome="refused") == before + 1


def values_now(name: str, **labels: str) -> float:
    return sum(values(metrics.render().decode(), name, **labels))


@activity.defn(name="obs.refuse_input")
def refuse_input(source: str) -> str:
    raise ApplicationError(f"{source} is not a video", type="InvalidVideo", non_retryable=True)


# Not sandboxed: a stand-in whose module (this test file) has no business in the sandbox; the
# interceptors' sandboxed side runs in worker.py above and in the replays below.
@workflow.defn(name="ObsRefusedWorkflow", sandboxed=False)
class RefusedWorkflow:
    @workflow.run
    async def run(self, source: str) -> str:
        return await workflow.execute_activity(
            refuse_input,
            source,
            activity_id="probe",
            start_to_close_timeout=timedelta(seconds=60),
            # Non-retryable as raised; if an interceptor mangled the error it would retry,
            # and the test should fail fast rather than time out.
            retry_policy=RetryPolicy(
                maximum_attempts=2, initial_interval=timedelta(milliseconds=100)
            ),
        )


@pytest.mark.orchestration
async def test_a_failed_step_and_job_are_counted_and_the_error_kept(settings, task_queue):
    metrics.install_sdk_metrics()  # this process's runtime, for the client connected next
    worker_client = await connect(settings, wait_seconds=30)
    errors_before = values_now(
        "spool_step_duration_seconds_count", step="probe", task_queue=task_queue, outcome="error"
    )
    with ThreadPoolExecutor(2) as pool:
        async with Worker(
            worker_client,
            task_queue=task_queue,
            workflows=[RefusedWorkflow],
            activities=[refuse_input],
            activity_executor=pool,
            interceptors=observability.worker_interceptors(),
        ):
            with pytest.raises(WorkflowFailureError) as failed:
                await worker_client.execute_workflow(
                    RefusedWorkflow.run,
                    "upload.bin",
                    id=f"obs-{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                )
    # The step's own error reaches the workflow untouched.
    cause = failed.value.cause.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidVideo"
    assert cause.message == "upload.bin is not a video"
    assert (
        values_now(
            "spool_step_duration_seconds_count",
            step="probe",
            task_queue=task_queue,
            outcome="error",
        )
        == errors_before + 1
    )
    assert (
        values_now(
            "spool_jobs_total", kind="ObsRefusedWorkflow", state="failed", task_queue=task_queue
        )
        == 1
    )


# --- the API process and a trace across it ---------------------------------------------------


@contextlib.asynccontextmanager
async def api_and_worker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API (connecting its own client, as `python -m api` does) and the real blog
    worker, built as worker.py builds it, on a client connected the same way."""
    from worker import build_workers, plan_queues

    app = create_app(settings)
    worker_client = await connect(settings, wait_seconds=30)
    plan = plan_queues(settings, ["pipeline"], max_concurrent=4)
    with ThreadPoolExecutor(8) as pool:
        async with contextlib.AsyncExitStack() as stack:
            for w in build_workers(worker_client, plan, pool, grace_seconds=2):
                await stack.enter_async_context(w)
            await stack.enter_async_context(app.router.lifespan_context(app))
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://localhost", timeout=60
                )
            )
            yield http


async def publish(http: httpx.AsyncClient, client, post: Post) -> str:
    body = {
        "post_id": post.post_id,
        "author_id": post.author_id,
        "title": post.title,
        "body": post.body,
        "followers": list(post.followers),
    }
    answer = await http.post("/v1/posts", headers=AUTH, json=body)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    await asyncio.wait_for(client.get_workflow_handle(job_id).result(), WITHIN)
    return job_id


def series(text: str, name: str) -> dict[tuple, float]:
    """{labels as sorted pairs: value} of one metric."""
    return {
        tuple(sorted(labels.items())): value
        for sample, labels, value in samples(text)
        if sample == name
    }


def grown(before: str, after: str, name: str) -> list[dict[str, str]]:
    """The label sets of ``name`` whose value grew between two scrapes (the registry is the
    process's: other tests' requests are in it too)."""
    old, new = series(before, name), series(after, name)
    return [dict(key) for key, value in new.items() if value > old.get(key, 0.0)]


@pytest.mark.orchestration
async def test_api_metrics_show_requests_and_temporal_client_calls(client, settings):
    s = settings.model_copy(update={"api_keys": [API_KEY]})
    requests = "spool_http_request_duration_seconds_count"
    async with api_and_worker(s) as http:
        before = (await http.get("/metrics")).text
        await publish(http, client, make_post())
        # A client chooses paths and methods: neither may make a series of its own.
        assert (await http.request("BREW", f"/v1/nothing/{uuid.uuid4().hex}")).status_code in (
            404,
            405,
        )
        answer = await http.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        assert "/metrics" not in (await http.get("/openapi.json")).text
    # Requests by route template (never the raw path), method and status: exactly the POST
    # and the odd request grew (besides the scrape itself).
    key = (("method", "POST"), ("route", "/v1/posts"), ("status", "202"))
    assert series(text, requests)[key] - series(before, requests).get(key, 0.0) == 1.0
    assert [
        labels
        for labels in grown(before, text, requests)
        if labels["route"] not in ("/v1/posts", "/metrics")
    ] == [{"method": "other", "route": "unmatched", "status": "404"}]
    # The API's Temporal client, from the SDK runtime (exported as the counter
    # temporal_request; the parser names counter samples *_total): the publish asked whether
    # a worker polls the queue before it sent the post's workflow its Update. The task queue
    # is this test's own, so the series is new.
    assert values(
        text,
        "temporal_request_total",
        operation="DescribeTaskQueue",
        task_queue=s.queue_pipeline,
    ) == [1]


@pytest.fixture
def spans():
    """Tracing on for this test, into memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    tracing.stop_tracing()
    assert tracing.setup_tracing("spool-test", exporter) is not None
    yield exporter
    tracing.stop_tracing()


@pytest.mark.orchestration
async def test_one_trace_links_the_request_the_workflow_and_each_activity(client, settings, spans):
    s = settings.model_copy(update={"api_keys": [API_KEY]})
    async with api_and_worker(s) as http:
        job_id = await publish(http, client, make_post())
    by_name = {span.name: span for span in spans.get_finished_spans()}
    request = by_name["POST /v1/posts"]
    assert request.parent is None and request.attributes["http.response.status_code"] == 202
    # The request hands the publish to the post's own workflow, which starts the job.
    start_post = by_name["StartUpdateWithStartWorkflow:PostWorkflow"]
    assert parent_of(start_post) == request.context.span_id
    for span in ("RunWorkflow:PostWorkflow", "HandleUpdate:apply"):
        assert parent_of(by_name[span]) == start_post.context.span_id, span
    start_workflow = by_name["StartChildWorkflow:BlogPublishWorkflow"]
    assert parent_of(start_workflow) == start_post.context.span_id
    # Temporal's interceptor ends workflow spans at once (they must be deterministic), so
    # the workflow's spans hang from the StartWorkflow span whose context the run carries.
    run_workflow = by_name["RunWorkflow:BlogPublishWorkflow"]
    assert parent_of(run_workflow) == start_workflow.context.span_id
    assert run_workflow.attributes["temporalWorkflowID"] == job_id
    assert parent_of(by_name["CompleteWorkflow:BlogPublishWorkflow"]) == (
        start_workflow.context.span_id
    )
    for step in ("index_post", "record_post_for_author", "notify_followers"):
        start, run = by_name[f"StartActivity:{step}"], by_name[f"RunActivity:{step}"]
        assert parent_of(start) == start_workflow.context.span_id, step
        assert parent_of(run) == start.context.span_id, step
        assert run.attributes["temporalActivityID"] == step
    trace_ids = {span.context.trace_id for span in spans.get_finished_spans()}
    assert trace_ids == {request.context.trace_id}


@pytest.mark.orchestration
async def test_a_callers_traceparent_is_continued(client, settings, spans):
    caller_trace, caller_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    app = create_app(settings, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as http,
    ):
        answer = await http.get(
            "/v1/config", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
        )
        assert answer.status_code == 200
        assert (await http.get("/healthz")).status_code == 200  # probes are not traced
    [span] = spans.get_finished_spans()
    assert span.name == "GET /v1/config"
    assert f"{span.context.trace_id:032x}" == caller_trace
    assert f"{parent_of(span):016x}" == caller_span


class OtlpCollector(http.server.ThreadingHTTPServer):
    """A stand-in OTLP/HTTP collector on loopback that keeps what is POSTed to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                collector.posts.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_spans_go_out_over_otlp_when_an_endpoint_is_configured(monkeypatch):
    tracing.stop_tracing()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert tracing.setup_tracing("spool-otlp-test") is None  # nothing configured: off
    assert tracing.tracing_interceptors() == []
    collector = OtlpCollector()
    try:
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        assert tracing.setup_tracing("spool-otlp-test") is None  # switched off explicitly
        monkeypatch.delenv("OTEL_TRACES_EXPORTER")
        tracer = tracing.setup_tracing("spool-otlp-test")
        assert tracer is not None and len(tracing.tracing_interceptors()) == 1
        with tracer.start_as_current_span("publish post-p1-v1"):
            pass
        tracing.stop_tracing()  # flushes the batch, as a stopping worker does
    finally:
        tracing.stop_tracing()
        collector.shutdown()
    [(path, body)] = collector.posts
    assert path == "/v1/traces"
    assert b"publish post-p1-v1" in body and b"spool-otlp-test" in body


def parent_of(span) -> int | None:
    return span.parent.span_id if span.parent is not None else None


# --- who may read /metrics --------------------------------------------------------------------

METRICS_TOKEN = "metrics-token-0123456789"


@pytest.mark.orchestration
async def test_api_metrics_follow_private_reads_or_need_their_own_token(client, settings):
    """Private reads: /metrics needs the key like any read. A metrics token: only the token
    opens it, whatever the reads (a scraper gets no key that could write)."""
    private = api_settings(settings, public_reads=False)
    async with api_client(private, client) as http:
        assert_error(await http.get("/metrics"), 401)
        assert (await http.get("/metrics", headers=API_AUTH)).status_code == 200
    for public in (True, False):
        s = api_settings(settings, public_reads=public, metrics_token=METRICS_TOKEN)
        async with api_client(s, client) as http:
            assert_error(await http.get("/metrics"), 401)
            assert_error(await http.get("/metrics", headers=API_AUTH), 401)
            scrape = await http.get(
                "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
            assert scrape.status_code == 200 and "spool_http_request" in scrape.text


def test_a_workers_metrics_need_the_token_when_one_is_set():
    server = metrics.serve_metrics("127.0.0.1", 0, METRICS_TOKEN)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        for sent in ({}, {"Authorization": "Bearer wrong"}):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(urllib.request.Request(url, headers=sent), timeout=30)
            assert err.value.code == 401
        scrape = urllib.request.Request(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(scrape, timeout=30) as answer:
            assert answer.status == 200
    finally:
        server.shutdown()
        server.server_close()


# --- the interceptors against running histories ---------------------------------------------


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_saved_histories_replay_with_the_interceptors(path: Path):
    """The tracing and metrics interceptors' workflow side passes the sandbox and adds no
    command, so workflows already running keep replaying with them on (rule 7)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    replayer = Replayer(
        workflows=[
            BlogPublishWorkflow,
            PostWorkflow,
            VideoPipelineWorkflow,
            CaptionsWorkflow,
            VideoDeletionWorkflow,
            SweepAbandonedWritesWorkflow,
            SweepExpiredUploadsWorkflow,
        ],
        interceptors=[SpoolMetricsInterceptor(), TracingInterceptor(provider.get_tracer("t"))],
    )
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_step_label_keeps_metric_series_bounded():
    """One series per step, not per chunk: a 4 h video has ~480 chunk activities."""
    from spool.observability.interceptors import step_label

    assert step_label("encode-00042") == step_label("encode-00000") == "encode"
    assert step_label("package-720p") == "package-720p"
    assert step_label("record-final") == "record-final"
    assert step_label("announce-captions") == "announce-captions"
    assert step_label("index_post") == "index_post"
