"""Session-wide real services: one Temporal dev server and (on demand) one Elasticsearch,
PostgreSQL and S3Proxy (the plugins in tests/support/), and the fixtures every module shares.

In CI (CI=true) a test whose service is missing fails; elsewhere it skips with the reason.
Helpers live in tests/support/, never here: test modules import them from there.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

# Before any support module is imported: their asserts explain a failure as a test's do.
pytest.register_assert_rewrite("tests.support")

from devstack.proc import free_port  # noqa: E402
from devstack.temporal import DevServer  # noqa: E402
from spool import scratch  # noqa: E402
from spool.config import Settings  # noqa: E402
from spool.process import single_threaded_blas  # noqa: E402
from spool.temporal import connect  # noqa: E402
from tests.support.paths import LOGS  # noqa: E402
from tests.support.services import service_missing, started  # noqa: E402

# In-process workers run Whisper beside forked ffmpeg children, as worker.py does.
single_threaded_blas()

pytest_plugins = [
    "tests.support.tiers",
    "tests.support.es_fixtures",
    "tests.support.pg_fixtures",
    "tests.support.s3_fixtures",
    "tests.support.mail_fixtures",
    "tests.support.fault_fixtures",
    "tests.support.cluster_fixtures",
    "tests.support.ordering",
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory):
    server = DevServer(
        port=free_port(),
        ui_port=None,
        db_filename=None,
        log_path=LOGS / "temporal-dev-server.log",
    )
    with started(server, "Temporal dev server"):
        yield server


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


@pytest.fixture(scope="module")
def clip(clips) -> Path:
    """A small upload: 2.5 s of a 320x240 test pattern with espeak-ng speech."""
    from tests.support import media_clips

    return media_clips.make_clip(clips / "speech.mp4", width=320, height=240, seconds=2.5)


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


@pytest.fixture
def own_scratch(tmp_path, monkeypatch) -> str:
    """This process's activities work under a scratch root of this test's own, so the ffmpeg
    processes it finds by that path are its own, not another test run's on the machine."""
    root = tmp_path / "scratch"
    root.mkdir()
    # The root's lock goes with it: kept aside (and held) meanwhile, restored after, so no
    # worker's sweep takes the process's own root for a dead one's once this test has ended.
    monkeypatch.setattr(scratch, "_owner", None)
    monkeypatch.setattr(scratch, "_root", None)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return str(root)
