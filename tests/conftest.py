"""Session-wide real services: one Temporal dev server and (on demand) one Elasticsearch.

In CI (CI=true) a test whose service is missing fails; elsewhere it skips with the reason.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.worker import Worker

from devstack.proc import free_port
from devstack.temporal import DevServer
from spool.config import Settings
from spool.process import single_threaded_blas
from spool.temporal import connect

# In-process workers run Whisper beside forked ffmpeg children, as worker.py does.
single_threaded_blas()

pytest_plugins = [
    "tests.support.es_fixtures",
    "tests.support.pg_fixtures",
    "tests.support.s3_fixtures",
]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def service_missing(reason: str) -> None:
    """Fail in CI, skip elsewhere: a test that needs a real service never passes without it."""
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory):
    server = DevServer(
        port=free_port(),
        ui_port=None,
        db_filename=None,
        log_path=ARTIFACTS / "logs" / "temporal-dev-server.log",
    )
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"Temporal dev server did not start: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(temporal_server):
    settings = Settings(temporal_address=temporal_server.address)
    return await connect(settings, wait_seconds=30)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A directory for one test module's generated clips; needs ffmpeg and espeak-ng."""
    from tests.support import media_clips

    missing = media_clips.tools_missing()
    if missing:
        service_missing(missing)
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def whisper_ready() -> None:
    """The configured Whisper model (default: the bundled tiny.en) is there to load."""
    from spool import whisper

    try:
        model = whisper.resolve_model(Settings())
    except Exception as exc:  # noqa: BLE001
        service_missing(f"Whisper model unavailable: {exc}")
    if not Path(model).exists():
        service_missing(f"Whisper model not found at {model}")


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(tmp_path, temporal_server, task_queue) -> Settings:
    """Settings for one test: private data dir, one task queue for every kind of work."""
    return Settings(
        temporal_address=temporal_server.address,
        data_dir=tmp_path / "data",
        queue_pipeline=task_queue,
        queue_media=task_queue,
        queue_captions=task_queue,
    )


@contextlib.asynccontextmanager
async def running_worker(
    client, task_queue: str, *, workflows=(), activities=(), threads: int = 16
):
    """An in-process worker on the test's queue; sync activities run on a thread pool."""
    with ThreadPoolExecutor(threads) as pool:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=list(workflows),
            activities=list(activities),
            activity_executor=pool,
            max_concurrent_activities=threads,
        ):
            yield


async def activity_attempts(handle) -> dict[str, int]:
    """Highest attempt each activity type reached, read from the workflow's history."""
    history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    attempts: dict[str, int] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            name = scheduled[attrs.scheduled_event_id]
            attempts[name] = max(attempts.get(name, 0), attrs.attempt)
    return attempts
