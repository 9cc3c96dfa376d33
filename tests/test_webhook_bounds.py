"""A receiver cannot make a delivery cost more than its bounds (docs/security.md): every
hostile receiver of tests/support/hostile_receivers.py is delivered to by a process of its
own, which must give up by the deadline and hold a bounded amount of memory; deliveries run
on threads of their own; and a destination URL's path (often a token) shows nowhere but the
ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.webhooks import WebhookActivities
from spool import webhooks
from spool.config import Settings
from spool.models import PublishEventInput
from spool.notify import Notification, make_notifier
from spool.service.jobs import status as job_view
from tests.support.api import AUTH, api_client
from tests.support.hostile_receivers import RECEIVER_CASES, RawReceiver, ReceiverCase, held_until
from tests.support.waiting import eventually
from tests.support.webhook_senders import SECRET, Receiver, webhook_settings
from tests.support.workers import spool_worker

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 3.0
# Far above the deadline: a delivery that ends only when a read times out fails the bound.
READ_TIMEOUT_SECONDS = 120.0
TOKEN = "s3cr3t-token"

pytestmark = pytest.mark.orchestration


def deliver_in_own_process(url: str) -> dict[str, Any]:
    """tests/support/deliver_once.py's report. A delivery that the deadline does not end runs into
    the process's bound, a quarter of the per-read timeout the drip never trips."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.deliver_once", url, str(DEADLINE_SECONDS)]
        + [str(READ_TIMEOUT_SECONDS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=READ_TIMEOUT_SECONDS / 4,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("case", RECEIVER_CASES, ids=lambda c: c.name)
def test_a_hostile_receiver_gets_a_bounded_delivery(case: ReceiverCase):
    with RawReceiver(case.answer) as rx:
        report = deliver_in_own_process(rx.url)
        print(f"\n{case.name}: {report}, receiver sent {rx.bytes_sent} bytes")
        assert rx.got_request.is_set()
        sent = rx.bytes_sent
    assert report["outcome"] == case.outcome, report
    assert report["memory_growth_bytes"] <= case.max_memory_growth_bytes, report
    assert sent <= case.max_bytes_sent, sent
    if case.outcome == "failed":
        assert f"no answer within {DEADLINE_SECONDS:g} s" in report["error"], report
    assert TOKEN not in report["error"] and "/hooks" not in report["error"], report


def test_deliveries_do_not_take_the_threads_other_blocking_work_needs(tmp_path):
    """With the event loop's default executor down to one thread, a delivery held by its
    receiver leaves that thread free: storage, database and probe calls (asyncio.to_thread)
    go on while it waits."""
    release = threading.Event()
    with RawReceiver(held_until(release)) as rx:
        settings = Settings(
            data_dir=tmp_path / "data",
            notifier="webhook",
            webhook_secret=SecretStr(SECRET),
            webhook_allowlist=["127.0.0.1/32"],
            webhook_urls=[rx.url],
            webhook_deadline_seconds=READ_TIMEOUT_SECONDS,
            webhook_timeout_seconds=READ_TIMEOUT_SECONDS,
        )
        acts = WebhookActivities(settings)
        inp = PublishEventInput(event_id="held-1", event_type="video.captions_available")

        async def scenario() -> int:
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
            delivery = asyncio.create_task(ActivityEnvironment().run(acts.publish_event, inp))
            await eventually(rx.got_request.is_set, "the receiver holds the delivery", within=60)
            try:
                # Held receiver, free thread: without a pool of its own the delivery would
                # hold the only default thread until its 120 s deadline.
                assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 30) == "free"
            finally:
                release.set()
            return await delivery

        assert asyncio.run(scenario()) == 1


def test_errors_and_logs_name_a_destination_by_scheme_and_host_only(caplog):
    s = Settings(webhook_secret=SecretStr(SECRET), webhook_allowlist=["127.0.0.1/32"])
    with Receiver(fail=10).running() as receiver:
        url = receiver.url.replace("/hooks/spool", f"/services/T0/B0/{TOKEN}?sig={TOKEN}")
        with pytest.raises(webhooks.WebhookFailed) as err:
            webhooks.send(s, webhooks.Delivery(url, "msg_1", "video.ready", {}))
        assert str(err.value) == f"http://127.0.0.1:{receiver.port} answered HTTP 500"
    closed = url  # the receiver has stopped listening: connection refused
    with pytest.raises(webhooks.WebhookFailed) as err:
        webhooks.send(s, webhooks.Delivery(closed, "msg_1", "video.ready", {}))
    assert TOKEN not in str(err.value) and "ConnectError" in str(err.value)
    notifier = make_notifier(s.model_copy(update={"notifier": "webhook"}))
    refused = f"http://10.0.0.1/services/{TOKEN}"
    with caplog.at_level(logging.INFO, logger="spool.notify"):
        notifier.deliver(Notification("k", "e", "video.ready", refused, {}))
    assert "http://10.0.0.1" in caplog.text and TOKEN not in caplog.text
    assert webhooks.shown_url(f"https://user@[::1]:8443/x/{TOKEN}") == "https://[::1]:8443"


async def test_a_retrying_delivery_shows_no_token_in_the_public_status(client, settings):
    with Receiver(fail=10**6).running() as receiver:
        url = receiver.url.replace("/hooks/spool", f"/services/T0/B0/{TOKEN}")
        s = webhook_settings(settings, webhook_urls=[url])
        post = {"post_id": "tokened-1", "author_id": "a", "title": "T", "body": "B"}
        async with api_client(s, client) as http, spool_worker(client, s):
            r = await http.post("/v1/posts", headers=AUTH, json=post)
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]

            async def notify_error() -> str | None:
                status = (await job_view(client, job_id)).model_dump(mode="json")
                step = next((x for x in status["steps"] if x["name"] == "notify_followers"), {})
                return step.get("last_error")

            error = str(await eventually(notify_error, "notify_followers retrying", within=60))
            await client.get_workflow_handle(job_id).terminate("test over")
    assert f"http://127.0.0.1:{receiver.port} answered HTTP 500" in error
    assert TOKEN not in error and "/services" not in error
