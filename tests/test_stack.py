"""`make up` as a person runs it: starts everything, says where it is, Ctrl-C stops it all;
and the dev server it starts hands tasks out in priority order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.common import Priority
from temporalio.worker import Worker

from devstack.proc import free_port, port_in_use
from devstack.stack import API_KEY_FILE, local_api_key, stack_api_key, stack_env
from spool.config import Settings
from tests.support.paths import REPO
from tests.support.start_order import StartOrder
from tests.support.waiting import eventually


def start_up(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "SPOOL_DATA_DIR": str(tmp_path / "var"),
        "SPOOL_API_PORT": str(free_port()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.up", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(proc: subprocess.Popen, text: str, timeout: float = 180) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"never printed {text!r}; got:\n{''.join(seen)}")


async def finished_job_state(temporal_port: int, job_id: str) -> str:
    """The job's final state as Temporal (not Spool's database) has it."""
    from spool.config import Settings
    from spool.temporal import connect

    client = await connect(Settings(temporal_address=f"127.0.0.1:{temporal_port}"), wait_seconds=30)
    result = await asyncio.wait_for(client.get_workflow_handle(job_id).result(), 120)
    return result["state"]


def banner_value(banner: str, label: str, index: int = -1) -> str:
    """A word of the banner line that starts with ``label``."""
    return next(line.split() for line in banner.splitlines() if label in line)[index]


def run_stack_until_ctrl_c(tmp_path: Path, temporal_port: int, ui_port: int, work) -> None:
    """Start `make up`, call work(api_url, key) once it is up, then Ctrl-C it: exit 0, ports
    free. The write key is the one the banner prints, kept in the data directory; Mailpit's
    web UI (the emails) is printed and answers."""
    mail_port, mail_ui_port = free_port(), free_port()
    proc = start_up(
        tmp_path,
        *("--temporal-port", str(temporal_port), "--ui-port", str(ui_port)),
        *("--mail-port", str(mail_port), "--mail-ui-port", str(mail_ui_port)),
    )
    try:
        banner = read_until(proc, "Ctrl-C stops everything")
        assert f"http://localhost:{ui_port}" in banner
        mail_ui = banner_value(banner, "Mailpit (emails)", 2)
        assert mail_ui == f"http://127.0.0.1:{mail_ui_port}"
        assert httpx.get(mail_ui + "/api/v1/messages", timeout=10).status_code == 200
        api = banner_value(banner, "Spool web page").rstrip("/")
        key = banner_value(banner, "Write key", 2)
        assert key == (tmp_path / "var" / API_KEY_FILE).read_text().strip()
        assert (tmp_path / "var" / API_KEY_FILE).stat().st_mode & 0o777 == 0o600
        work(api, key)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not port_in_use(temporal_port) and not port_in_use(ui_port)
    assert not port_in_use(mail_port) and not port_in_use(mail_ui_port)


@pytest.mark.e2e
def test_up_serves_the_ui_and_api_and_ctrl_c_stops_everything(tmp_path):
    temporal_port, ui_port = free_port(), free_port()
    post = {
        "post_id": "survives-restart",
        "author_id": "ada",
        "title": "Before the restart",
        "body": "Published, then the stack is stopped and started again.",
        "followers": ["grace"],
    }
    jobs: list[str] = []

    keys: list[str] = []

    def publish(api: str, key: str) -> None:
        keys.append(key)
        assert httpx.get(f"http://localhost:{ui_port}", timeout=10).status_code == 200
        assert httpx.get(api + "/healthz", timeout=10).status_code == 200
        answer = httpx.post(
            api + "/v1/posts",
            json=post,
            timeout=30,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 202, answer.text
        jobs.append(answer.json()["job_id"])
        assert asyncio.run(finished_job_state(temporal_port, jobs[0])) == "ready"

    def find_it_again(api: str, key: str) -> None:
        keys.append(key)
        # A new dev server process on the same var/temporal.db still has the job's history.
        assert asyncio.run(finished_job_state(temporal_port, jobs[0])) == "ready"
        assert (
            httpx.get(api + f"/v1/posts/{post['post_id']}", timeout=10).json()["job_id"] == jobs[0]
        )

    run_stack_until_ctrl_c(tmp_path, temporal_port, ui_port, publish)
    assert (tmp_path / "var" / "temporal.db").exists()
    run_stack_until_ctrl_c(tmp_path, temporal_port, ui_port, find_it_again)
    assert keys[0] == keys[1], keys  # the data directory's key, kept across restarts


@pytest.mark.unit
def test_each_data_directory_has_its_own_write_key(tmp_path, monkeypatch):
    """No fixed key a web page could know: each data directory makes its own, once."""
    monkeypatch.delenv("SPOOL_API_KEYS", raising=False)
    first, second = Settings(data_dir=tmp_path / "a"), Settings(data_dir=tmp_path / "b")
    key = local_api_key(first)
    assert len(key) >= 32 and key != local_api_key(second)
    assert local_api_key(first) == key == stack_api_key(first)
    assert json.loads(stack_env(first, "127.0.0.1:7233")["SPOOL_API_KEYS"]) == [key]
    assert (tmp_path / "a" / API_KEY_FILE).stat().st_mode & 0o777 == 0o600


@pytest.mark.unit
def test_a_taken_port_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_up(tmp_path, "--temporal-port", str(port), "--ui-port", str(free_port()))
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"port {port} is already in use" in output
    assert "Traceback" not in output


# --- the dev server's task queues ---------------------------------------------------------


@activity.defn(name="stack_test.noop")
async def noop(name: str) -> str:
    return name


@workflow.defn(sandboxed=False)
class PrioritiesWorkflow:
    """Schedules twelve activities at once on ``queue``, keys 1-4 in turn."""

    @workflow.run
    async def run(self, queue: str) -> list[str]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(
                        noop,
                        f"{i:02d}",
                        task_queue=queue,
                        activity_id=f"{i:02d}-key{1 + i % 4}",
                        start_to_close_timeout=timedelta(seconds=30),
                        priority=Priority(priority_key=1 + i % 4),
                    )
                    for i in range(12)
                )
            )
        )


@pytest.mark.orchestration
async def test_the_dev_server_hands_a_backlog_out_in_priority_order(client):
    """Twelve tasks waiting, four keys scheduled in turn: a worker with one slot gets them in
    key order. Across several partitions of a queue it would not (a poller takes the best
    task of one partition), and a media host would take a job's short chunks before its long
    ones (devstack/temporal.py, workflows/policies.py)."""
    queue = f"priorities-{uuid.uuid4().hex[:8]}"
    order = StartOrder()
    async with Worker(client, task_queue=f"{queue}-wf", workflows=[PrioritiesWorkflow]):
        handle = await client.start_workflow(
            PrioritiesWorkflow.run, queue, id=queue, task_queue=f"{queue}-wf"
        )

        async def scheduled() -> bool:
            history = await handle.fetch_history()
            return (
                sum(
                    e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                    for e in history.events
                )
                == 12
            )

        await eventually(scheduled, "twelve activities scheduled")
        async with Worker(
            client,
            task_queue=queue,
            activities=[noop],
            max_concurrent_activities=1,
            interceptors=[order],
        ):
            await asyncio.wait_for(handle.result(), 60)
    keys = [activity_id.split("-")[1] for activity_id in order.started]
    assert len(keys) == 12 and keys == sorted(keys), order.started
