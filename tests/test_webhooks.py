"""Webhooks end to end: a local receiver verifies every Standard Webhooks signature, sees one
logical event per occurrence (retries carry the same webhook-id), and internal destinations
are refused before any connection is made."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from spool import webhooks
from spool.config import Settings
from spool.notify import Notification, make_notifier
from tests import media_clips
from tests.conftest import service_missing
from tests.test_api import AUTH, api_client, api_settings, spool_worker, storage_files, wait_video

SECRET = "whsec_" + "c3Bvb2wtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="


class Receiver:
    """An http.server on 127.0.0.1 that answers 500 to the first ``fail`` requests."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = 500 if len(receiver.requests) < receiver.fail else 204
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()},
                                          body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/spool"

    def accepted(self) -> list[dict]:
        """Every request's verified event (raises if any signature is wrong)."""
        verifier = Webhook(SECRET)
        return [verifier.verify(body, headers) for headers, body, _ in self.requests]

    @contextmanager
    def running(self):
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def webhook_settings(settings: Settings, **extra) -> Settings:
    values = {"notifier": "webhook", "webhook_secret": SECRET,
              "webhook_allowlist": ["127.0.0.1/32"], **extra}
    return api_settings(settings, **values)


async def wait_for(predicate, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_post_published_reaches_a_failing_subscriber_on_the_third_try(client, settings):
    with Receiver(fail=2).running() as receiver:
        s = webhook_settings(settings, webhook_urls=[receiver.url])
        post = {"post_id": "hooked-1", "author_id": "hook-author", "title": "Signed",
                "body": "Delivered at least once, one id.", "followers": ["reader-1"]}
        async with api_client(s, client) as http, spool_worker(client, s):
            r = await http.post("/v1/posts", headers=AUTH, json=post)
            assert r.status_code == 202, r.text
            await client.get_workflow_handle(r.json()["job_id"]).result()
            # A repeat of the same version and a later edit are not new publications.
            assert (await http.post("/v1/posts", headers=AUTH, json=post)).status_code == 202
            r2 = await http.post("/v1/posts", headers=AUTH, json={**post, "version": 2})
            await client.get_workflow_handle(r2.json()["job_id"]).result()
        statuses = [status for _, _, status in receiver.requests]
        assert statuses == [500, 500, 204], statuses
        events = receiver.accepted()  # every attempt is correctly signed
        ids = {headers["webhook-id"] for headers, _, _ in receiver.requests}
        assert len(ids) == 1, ids  # three attempts, one logical event
        assert {e["type"] for e in events} == {"post.published"}
        assert events[-1]["data"]["post_id"] == "hooked-1"
        with pytest.raises(Exception):  # noqa: B017 - a wrong secret never verifies
            headers, body, _ = receiver.requests[-1]
            Webhook(webhooks.new_secret()).verify(body, headers)


async def test_video_callback_gets_one_signed_event(client, settings, tmp_path):
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    clip = media_clips.make_clip(tmp_path / "c.mp4", width=320, height=240, seconds=1.5,
                                 speech=None)
    with Receiver().running() as receiver:
        s = webhook_settings(settings)
        async with api_client(s, client) as http:
            r = await http.post("/v1/videos", headers=AUTH,
                                files={"file": ("c.mp4", clip.read_bytes(), "video/mp4")},
                                data={"captions": "false", "callback_url": receiver.url})
            assert r.status_code == 202, r.text
            video_id = r.json()["video_id"]
            async with spool_worker(client, s):
                v = await wait_video(http, video_id)
                await client.get_workflow_handle(f"video-{video_id}").result()
        assert v["state"] == "ready", v
        await wait_for(lambda: len(receiver.requests) >= 1)
        [event] = receiver.accepted()
        assert event["type"] == "video.ready"
        assert event["data"]["video_id"] == video_id
        assert event["data"]["job_id"] == f"video-{video_id}"


PRIVATE = ["http://10.0.0.1/", "http://192.168.1.1/hook", "http://169.254.169.254/latest",
           "http://127.0.0.1:9/", "http://[::1]/", "http://0.0.0.0/", "http://224.0.0.1/",
           "http://100.64.0.1/", "http://[::ffff:10.0.0.1]/", "http://[fe80::1]/",
           "http://240.0.0.1/", "http://172.16.5.4/"]
MALFORMED = ["ftp://example.com/", "http://user:pw@93.184.216.34/", "not a url", "http://",
             "https://93.184.216.34:99999/", "http://93.184.216.34/" + "x" * 400]


@pytest.fixture
def no_connections(monkeypatch):
    """Any attempt to open an outbound HTTP client fails the test."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("an outbound connection was attempted")

    monkeypatch.setattr(webhooks.httpx, "Client", refuse)


@pytest.mark.parametrize("url", PRIVATE + MALFORMED)
def test_internal_and_malformed_destinations_are_refused(url, no_connections):
    s = Settings(webhook_secret=SECRET, notifier="webhook")
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_destination(s, url)
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.send(s, webhooks.Delivery(url, "msg_1", "video.ready", {}))


def test_allow_flags():
    s = Settings(webhook_allowlist=["127.0.0.1/32"])
    webhooks.check_destination(s, "http://127.0.0.1:8080/")
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_destination(s, "http://10.0.0.1/")
    webhooks.check_destination(Settings(webhook_allow_private=True), "http://10.0.0.1/")
    webhooks.check_destination(Settings(), "https://93.184.216.34/hook")


def test_a_name_that_now_resolves_inside_is_refused_at_delivery(monkeypatch, no_connections,
                                                                 tmp_path: Path):
    answers = {"hooks.example.test": "93.184.216.34"}

    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(2, 1, 6, "", (answers[host], port))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake_getaddrinfo)
    s = Settings(webhook_secret=SECRET, notifier="webhook", data_dir=tmp_path)
    url = "https://hooks.example.test/spool"
    webhooks.check_destination(s, url)  # accepted at the door
    answers["hooks.example.test"] = "10.0.0.7"  # DNS changed since
    with pytest.raises(webhooks.WebhookRefused, match="10.0.0.7"):
        webhooks.check_destination(s, url)
    # The notifier refuses without connecting, and does not retry a refused destination.
    make_notifier(s).deliver(Notification(key="e:" + url, event_id="e", event_type="video.ready",
                                          recipient=url, payload={}))


async def test_private_callback_url_is_refused_at_the_door(client, settings, no_connections):
    s = webhook_settings(settings, webhook_allowlist=[])
    async with api_client(s, client) as http:
        for url in ("http://10.0.0.1/", "http://192.168.1.1/", "http://127.0.0.1:9/"):
            r = await http.post("/v1/videos", headers=AUTH, files={"file": ("a", b"x" * 10)},
                                data={"callback_url": url})
            assert r.status_code == 422 and r.json()["error"]["field"] == "callback_url", r.text
    assert storage_files(s) == []


def test_webhook_id_is_stable_per_event_and_destination():
    a = webhooks.webhook_id("video-done:v1:https://a.example/")
    assert a == webhooks.webhook_id("video-done:v1:https://a.example/")
    assert a != webhooks.webhook_id("video-done:v2:https://a.example/")
    assert a.startswith("msg_")


async def test_captions_available_and_job_end_each_arrive_once_signed(client, settings,
                                                                     tmp_path):
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    clip = media_clips.make_clip(tmp_path / "talk.mp4", width=320, height=240, seconds=2.5,
                                 speech="Spool makes captions")
    with Receiver().running() as receiver:
        s = webhook_settings(settings)
        async with api_client(s, client) as http:
            r = await http.post("/v1/videos", headers=AUTH,
                                files={"file": ("talk.mp4", clip.read_bytes(), "video/mp4")},
                                data={"callback_url": receiver.url})
            assert r.status_code == 202, r.text
            video_id = r.json()["video_id"]
            async with spool_worker(client, s):
                await client.get_workflow_handle(f"video-{video_id}").result()
        await wait_for(lambda: len(receiver.requests) >= 2)
        events = receiver.accepted()
    assert sorted(e["type"] for e in events) == ["video.captions_available", "video.ready"]
    captions = next(e for e in events if e["type"] == "video.captions_available")
    assert captions["data"]["video_id"] == video_id and captions["data"]["segments"] >= 1
    assert len({headers["webhook-id"] for headers, _, _ in receiver.requests}) == 2
