"""starter.py and worker.py as a user runs them: real processes against the real dev server."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import uuid
from pathlib import Path

import pytest

from activities.blog import BlogActivities
from spool.db import get_engine
from spool.db.blog import author_post_count
from spool.search import IndexUnavailable
from spool.search.sqlite import SqliteIndex
from spool.service.jobs import status as job_view
from tests.support.api import API_KEY, api_settings
from tests.support.live_api import live_api
from tests.support.paths import REPO
from tests.support.processes import run_starter, spool_env
from tests.support.workers import running_worker, spool_worker
from workflows.blog import BlogPublishWorkflow
from workflows.posts import PostWorkflow

pytestmark = pytest.mark.e2e


async def starter(settings, *args: str, wide: bool = False) -> subprocess.CompletedProcess:
    """Run starter.py; ``wide``: a console wide enough that no table cell wraps."""
    env = {**spool_env(settings), **({"COLUMNS": "200"} if wide else {})}
    return await run_starter(env, *args)


def write_post(tmp_path: Path, **fields) -> Path:
    uid = uuid.uuid4().hex[:8]
    post = {
        "post_id": f"cli-{uid}",
        "author_id": f"cli-author-{uid}",
        "title": "From the CLI",
        "body": "Started by starter.py",
        "followers": ["x"],
        **fields,
    }
    path = tmp_path / f"{post['post_id']}.json"
    path.write_text(json.dumps(post))
    return path


async def test_blog_returns_job_id_at_once_then_wait_and_status(client, settings, tmp_path):
    path = write_post(tmp_path)
    post = json.loads(path.read_text())
    # No worker yet: the CLI must still return the job id at once.
    started = await starter(settings, "blog", str(path), "--json")
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["job_id"]
    assert job_id == f"post-{post['post_id']}-v1"

    async with running_worker(
        client,
        settings.queue_pipeline,
        workflows=[BlogPublishWorkflow, PostWorkflow],
        activities=BlogActivities(settings).activities(),
    ):
        waited = await starter(settings, "wait", job_id, "--json")
        status = await starter(settings, "status", job_id, "--json")
        human = await starter(settings, "status", job_id)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["state"] == "ready"
    assert status.returncode == 0
    steps = {s["name"]: s["state"] for s in json.loads(status.stdout)["steps"]}
    assert steps == {
        "index_post": "done",
        "record_post_for_author": "done",
        "notify_followers": "done",
    }
    assert "index_post" in human.stdout and "ready" in human.stdout
    assert author_post_count(get_engine(settings), post["author_id"]) == 1


class GatedIndex(SqliteIndex):
    """The real SQLite index, whose writes wait for the test to open the gate (or, closed
    for good, fail as an unreachable index does)."""

    def __init__(self, path: Path, *, unavailable: bool = False) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.unavailable = unavailable

    def upsert(self, doc):
        if self.unavailable:
            raise IndexUnavailable("connection refused (test)")
        if not self.gate.wait(300):
            raise IndexUnavailable("the test never opened the gate")
        return super().upsert(doc)


def gated_blog_worker(client, settings, index: GatedIndex):
    return running_worker(
        client,
        settings.queue_pipeline,
        workflows=[BlogPublishWorkflow, PostWorkflow],
        activities=BlogActivities(settings, index=index).activities(),
    )


class Terminal:
    """A process whose stdout and stderr are a pseudo-terminal (120 x 40), as a person's
    shell is; collects everything it draws."""

    ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {k: v for k, v in env.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**env, "TERM": "xterm-256color"},
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        self._master = master
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            with self._lock:
                self._raw += chunk
        os.close(self._master)

    def text(self) -> str:
        with self._lock:
            raw = bytes(self._raw)
        return self.ANSI.sub("", raw.decode("utf-8", "replace"))

    async def until(self, pattern: str, seconds: float = 120) -> str:
        """Wait until the screen output matches; fail with what it showed."""
        for _ in range(int(seconds * 10)):
            if re.search(pattern, self.text()):
                return self.text()
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            await asyncio.sleep(0.1)
        raise AssertionError(f"never drew {pattern!r}; drew:\n{self.text()[-3000:]}")

    async def wait(self, seconds: float = 120) -> int:
        rc = await asyncio.to_thread(self.proc.wait, seconds)
        await asyncio.to_thread(self._reader.join, 30)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def step_row(name: str, state: str) -> str:
    """A row of the per-step table: the step's name, then its state in the next cell."""
    return rf"{name}\W+{state}\b"


async def test_blog_wait_shows_progress_and_exits_zero(client, settings, tmp_path):
    path = write_post(tmp_path)
    index = GatedIndex(tmp_path / "search.db")
    async with gated_blog_worker(client, settings, index):
        term = Terminal(
            [sys.executable, "starter.py", "blog", str(path), "--wait"], spool_env(settings)
        )
        try:
            # While index_post is held, the live table shows it running and the others done.
            waiting = await term.until(step_row("index_post", "running"))
            await term.until(step_row("notify_followers", "done"))
            assert re.search(r"step\W+state\W+progress", waiting), waiting
            index.gate.set()
            rc = await term.wait()
        finally:
            index.gate.set()
            term.kill()
    shown = term.text()
    assert rc == 0, shown
    running = shown.index(re.search(step_row("index_post", "running"), shown).group())
    finished = [m.start() for m in re.finditer(step_row("index_post", "done"), shown)]
    # Redrawn as the job moved: a frame with the step running, a later one with it done.
    assert finished and finished[-1] > running, shown
    assert len(re.findall(r"record_post_for_author", shown)) >= 2, shown
    assert re.search(r"post-cli-\w+-v1: ready", shown), shown


async def test_status_shows_retrying_attempt_while_the_index_is_down(client, settings, tmp_path):
    path = write_post(tmp_path)
    index = GatedIndex(tmp_path / "search.db", unavailable=True)
    async with gated_blog_worker(client, settings, index):
        started = await starter(settings, "blog", str(path), "--json")
        job_id = json.loads(started.stdout)["job_id"]
        # Wait (in-process, cheaply) until the server records a third attempt; from then on
        # the CLI must show it: the docs' "index_post  retrying  attempt 3: search index ...".
        for _ in range(1200):
            steps = (await job_view(client, job_id)).steps
            step = next(s for s in steps if s.name == "index_post")
            if step.attempt >= 3:
                break
            await asyncio.sleep(0.1)
        shown = (await starter(settings, "status", job_id, wide=True)).stdout
        found = re.search(r"index_post\W+retrying\W+attempt (\d+): search index unavailable", shown)
        assert found and int(found[1]) >= 3, shown
        as_json = json.loads((await starter(settings, "status", job_id, "--json")).stdout)
        index.unavailable = False
        index.gate.set()
        waited = await starter(settings, "wait", job_id, "--json")
    step = next(s for s in as_json["steps"] if s["name"] == "index_post")
    assert step["state"] == "retrying" and step["attempt"] >= 3
    assert "search index unavailable" in step["last_error"]
    assert waited.returncode == 0 and json.loads(waited.stdout)["state"] == "ready"


async def test_ready_with_errors_exits_3(client, settings, tmp_path):
    """The index stays down past SPOOL_INDEX_RETRY_SECONDS: index_post fails, the count and
    the notifications are delivered, and --wait exits 3 (ready with errors)."""
    path = write_post(tmp_path)
    index = GatedIndex(tmp_path / "search.db", unavailable=True)
    settings = settings.model_copy(update={"index_retry_seconds": 3})
    async with gated_blog_worker(client, settings, index):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "starter.py", "blog", str(path), "--wait", "--json"],
            cwd=REPO,
            env={**spool_env(settings), "SPOOL_INDEX_RETRY_SECONDS": "3"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 3, done.stdout + done.stderr
    status = json.loads(done.stdout.strip().splitlines()[-1])
    assert status["state"] == "ready_with_errors"
    assert {s["name"]: s["state"] for s in status["steps"]} == {
        "index_post": "failed",
        "record_post_for_author": "done",
        "notify_followers": "done",
    }


async def test_invalid_post_file_names_the_field_and_exits_2(settings, tmp_path):
    bad = write_post(tmp_path, body="")
    result = await starter(settings, "blog", str(bad), "--json")
    assert result.returncode == 2
    assert "body" in json.loads(result.stdout)["error"]
    assert result.stderr.strip().count("\n") == 0  # one line, no traceback

    unknown = write_post(tmp_path, colour="red")
    result = await starter(settings, "blog", str(unknown))
    assert result.returncode == 2 and "colour" in result.stderr

    missing = await starter(settings, "blog", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "no such file" in missing.stderr

    (tmp_path / "broken.json").write_text("{not json")
    broken = await starter(settings, "blog", str(tmp_path / "broken.json"))
    assert broken.returncode == 2 and "not valid JSON" in broken.stderr


async def test_unknown_job_and_unreachable_temporal_are_one_line_errors(settings):
    unknown = await starter(settings, "status", "no-such-job")
    assert unknown.returncode == 4 and "no job with id no-such-job" in unknown.stderr
    away = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    result = await starter(away, "status", "x")
    assert result.returncode == 4 and "cannot reach Temporal" in result.stderr
    assert "Traceback" not in result.stderr


async def test_worker_exits_zero_on_sigterm(settings):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        "--queue",
        "pipeline",
        "--grace-seconds",
        "5",
        cwd=REPO,
        env=spool_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        while b"worker ready" not in line:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert rc == 0


async def test_video_bad_input_is_refused_before_anything_is_stored(settings, clips):
    from tests.support import media_clips

    missing = await starter(settings, "video", str(clips / "nope.mp4"))
    assert missing.returncode == 2 and "no such file" in missing.stderr

    clip = media_clips.make_clip(clips / "cli.mp4", width=320, height=240, seconds=1.0, speech=None)
    bad = await starter(settings, "video", str(clip), "--renditions", "720p,999p")
    assert bad.returncode == 2
    assert "'999p' is not one of 1080p, 720p, 480p, 360p" in bad.stderr
    objects = settings.resolved_storage_dir
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))


async def test_video_start_cancel_and_wait(client, settings, clips):
    from activities.video import VideoActivitySet
    from activities.webhooks import WebhookActivities
    from tests.support import media_clips
    from workflows.captions import CaptionsWorkflow
    from workflows.video import VideoPipelineWorkflow

    clip = media_clips.make_clip(
        clips / "cancel-me.mp4", width=320, height=240, seconds=1.0, speech=None
    )
    started = await starter(settings, "video", str(clip), "--no-captions", "--json")
    assert started.returncode == 0, started.stderr
    out = json.loads(started.stdout)
    assert out["job_id"] == f"video-{out['video_id']}"
    assert (settings.resolved_storage_dir / "videos" / out["video_id"] / "source").is_file()

    cancelled = await starter(settings, "cancel", out["job_id"], "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["cancel_requested"]
    video = VideoActivitySet.from_settings(settings)
    async with running_worker(
        client,
        settings.queue_pipeline,
        workflows=[VideoPipelineWorkflow, CaptionsWorkflow],
        activities=[
            *video.pipeline_activities(),
            *video.media_activities(),
            *WebhookActivities(settings).activities(),
        ],
    ):
        waited = await starter(settings, "wait", out["job_id"], "--json")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert json.loads(waited.stdout)["state"] == "cancelled"
    # Once ended, a cancel is refused in one line (the API's 409), and an unknown job is 4.
    again = await starter(settings, "cancel", out["job_id"])
    assert again.returncode == 2 and "has already ended (canceled)" in again.stderr, again
    assert "Traceback" not in again.stderr
    unknown = await starter(settings, "cancel", "video-no-such-job")
    assert unknown.returncode == 4 and "no job with id video-no-such-job" in unknown.stderr


def _api_env(settings, port: int) -> dict[str, str]:
    return {
        **spool_env(settings),
        "SPOOL_API_HOST": "127.0.0.1",
        "SPOOL_API_PORT": str(port),
        "SPOOL_API_KEYS": '["remote-key"]',
    }


async def test_video_uploads_through_a_remote_api_without_shared_disk(
    client, settings, clips, tmp_path
):
    """The client shares nothing with the stack: its own data dir, no Temporal address that
    works. The API stores the upload in the stack's storage and starts the job."""
    from activities.video import VideoActivitySet
    from activities.webhooks import WebhookActivities
    from devstack.proc import free_port, wait_for_port
    from spool.storage import open_storage
    from tests.support import media_clips
    from workflows.captions import CaptionsWorkflow
    from workflows.video import VideoPipelineWorkflow

    clip = media_clips.make_clip(
        clips / "remote.mp4", width=320, height=240, seconds=1.0, speech=None
    )
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=REPO,
        env=_api_env(settings, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    remote_client = {
        **os.environ,
        "SPOOL_DATA_DIR": str(tmp_path / "client-data"),
        "SPOOL_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # nothing listens
        "SPOOL_API_KEY": "remote-key",
    }
    url = f"http://127.0.0.1:{port}"

    def run_starter(*args: str, env=remote_client) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "starter.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        await asyncio.to_thread(wait_for_port, port, 60, api, "the API")
        refused = await asyncio.to_thread(
            run_starter,
            "video",
            str(clip),
            "--api",
            url,
            env={**remote_client, "SPOOL_API_KEY": "wrong"},
        )
        assert refused.returncode == 2, refused.stderr
        assert "401 invalid API key" in refused.stderr
        video = VideoActivitySet.from_settings(settings)
        async with running_worker(
            client,
            settings.queue_pipeline,
            workflows=[VideoPipelineWorkflow, CaptionsWorkflow],
            activities=[
                *video.pipeline_activities(),
                *video.media_activities(),
                *video.captions_activities(),
                *WebhookActivities(settings).activities(),
            ],
        ):
            done = await asyncio.to_thread(
                run_starter, "video", str(clip), "--api", url, "--no-captions", "--wait", "--json"
            )
    finally:
        api.terminate()
        api.wait(30)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout.strip().splitlines()[-1])
    assert status["state"] == "ready" and [r["name"] for r in status["renditions"]] == ["240p"]
    stored = open_storage(settings).list_prefix(f"videos/{status['video_id']}")
    assert f"videos/{status['video_id']}/240p.mp4" in stored
    assert not (tmp_path / "client-data").exists()  # the client wrote nothing locally


async def test_worker_health_check_follows_its_event_loop(settings, tmp_path):
    """--check-health passes while the worker's loop runs, fails once it stops (a wedged or
    frozen worker), and passes again when it resumes: what a container health check needs."""
    beat = tmp_path / "alive"
    env = {
        **spool_env(settings),
        "SPOOL_WORKER_HEARTBEAT_FILE": str(beat),
        "SPOOL_WORKER_HEARTBEAT_SECONDS": "0.2",
    }

    def healthy() -> bool:
        check = subprocess.run(
            [sys.executable, "worker.py", "--check-health"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return check.returncode == 0

    async def until(want: bool) -> None:
        for _ in range(300):
            if await asyncio.to_thread(healthy) is want:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"health never became {want}")

    assert not await asyncio.to_thread(healthy)  # no worker, no heartbeat file
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        "--queue",
        "pipeline",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until(True)
        proc.send_signal(signal.SIGSTOP)
        await until(False)
        proc.send_signal(signal.SIGCONT)
        await until(True)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --- one view of a job, whatever the door -------------------------------------------------


async def printed_view(settings, *args: str) -> dict:
    """What ``starter.py ARGS --json`` prints (with the test API key), parsed."""
    env = {**spool_env(settings), "SPOOL_API_KEY": API_KEY}
    done = await run_starter(env, *args, "--json", within=300)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


async def read_both_ways(settings, url: str, *args: str) -> tuple[dict, dict]:
    """``starter.py ARGS --json`` straight through Temporal, then through the API at ``url``."""
    return await printed_view(settings, *args), await printed_view(settings, *args, "--api", url)


async def test_a_video_job_reads_the_same_through_temporal_and_through_the_api(
    client, settings, clips
):
    """The API's VideoView either way, for a job started by either door and every command
    that prints a job: metadata, media URLs as paths under the API's base (never storage
    keys), the same steps."""
    from spool.service.views import VideoView
    from tests.support import media_clips

    clip = media_clips.make_clip(clips / "views.mp4", width=320, height=240, seconds=1, speech=None)
    keys = set(VideoView.model_fields)
    async with live_api(api_settings(settings), client) as url, spool_worker(client, settings):
        started = await read_both_ways(settings, url, "video", str(clip), "--no-captions")
        assert set(started[0]) == set(started[1]) == keys
        for job_id in (view["job_id"] for view in started):
            waited = await read_both_ways(settings, url, "wait", job_id)
            assert set(waited[0]) == set(waited[1]) == keys
            # Closed, the job no longer moves (its owner's notice goes out after its state is
            # final): from here both doors must say exactly the same.
            await client.get_workflow_handle(job_id).result()
            direct, through_api = await read_both_ways(settings, url, "status", job_id)
            assert direct == through_api
            assert await read_both_ways(settings, url, "wait", job_id) == (direct, direct)
            video_id = direct["video_id"]
            assert direct["state"] == "ready" and direct["metadata"]["width"] == 320
            assert direct["hls_url"] == f"/v1/videos/{video_id}/hls/master.m3u8"
            assert [r["url"] for r in direct["renditions"]] == [
                f"/v1/videos/{video_id}/renditions/240p"
            ]
            assert direct["poster_url"] == f"/v1/videos/{video_id}/poster.jpg"


async def test_a_post_job_reads_the_same_through_temporal_and_through_the_api(
    client, settings, tmp_path
):
    """A post version's publishing job is the API's PostJobView either way, whichever door
    started it."""
    from spool.service.views import PostJobView

    first = write_post(tmp_path)
    post = json.loads(first.read_text())
    second = tmp_path / "v2.json"
    second.write_text(json.dumps({**post, "version": 2}))
    keys = set(PostJobView.model_fields)
    async with (
        live_api(api_settings(settings), client) as url,
        running_worker(
            client,
            settings.queue_pipeline,
            workflows=[BlogPublishWorkflow, PostWorkflow],
            activities=BlogActivities(settings).activities(),
        ),
    ):
        # Version 1 through Temporal (then repeated through the API: the same job), version 2
        # through the API only; each is read back both ways.
        started = [*await read_both_ways(settings, url, "blog", str(first))]
        started.append(await printed_view(settings, "blog", str(second), "--api", url))
        assert [set(view) for view in started] == [keys] * 3
        assert [view["job_id"] for view in started] == [
            f"post-{post['post_id']}-v1",
            f"post-{post['post_id']}-v1",
            f"post-{post['post_id']}-v2",
        ]
        for version, view in zip((1, 2), started[1:], strict=True):
            await client.get_workflow_handle(view["job_id"]).result()
            direct, through_api = await read_both_ways(settings, url, "status", view["job_id"])
            assert direct == through_api
            assert await read_both_ways(settings, url, "wait", view["job_id"]) == (direct, direct)
            assert direct["state"] == "ready" and direct["version"] == version
            assert direct["post_url"] == f"/v1/posts/{post['post_id']}?version={version}"
            assert {s["name"]: s["state"] for s in direct["steps"]} == {
                "index_post": "done",
                "record_post_for_author": "done",
                "notify_followers": "done",
            }
