"""Ingest from a URL (docs/pipelines.md): POST /v1/videos with source_url answers at once, and
the job's first step fetches the URL through the webhooks' guard, with ranges, resuming after a
dropped connection, under the size cap and a deadline. A real HTTP server on loopback serves a
generated clip (tests/support/source_server.py); loopback is allowed as webhook tests allow it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.video.fetching import FetchActivities
from spool import fetch, scratch
from spool.config import Settings
from spool.models.video import FetchSourceInput
from spool.storage import open_storage
from spool.storage.keys import source_key
from spool.storage.transfers import Transfers
from tests.support.api import AUTH, api_client, api_settings, wait_video
from tests.support.saved_histories import save_history
from tests.support.source_server import LOOPBACK_ALLOWED, Behaviour, SourceServer
from tests.support.workers import spool_worker

BODY = bytes(range(256)) * 400  # 100 KiB that is not a video

pytestmark = pytest.mark.orchestration


def loopback(**extra) -> Settings:
    return Settings(**LOOPBACK_ALLOWED, **extra)


async def fetched(settings: Settings, url: str, path: Path, start: int = 0) -> fetch.Fetched:
    return await fetch.fetch_to_file(settings, url, path, start=start, on_bytes=lambda n: None)


# --- the fetch itself ------------------------------------------------------------------------


async def test_a_dropped_connection_resumes_with_a_range(tmp_path):
    with SourceServer(BODY, Behaviour(drop_first_after=30_000)) as srv:
        got = await fetched(loopback(), srv.url, tmp_path / "part")
    assert got.bytes == len(BODY) and (tmp_path / "part").read_bytes() == BODY
    assert srv.seen.ranges == [None, "bytes=30000-"]


async def test_404_and_410_are_refused_naming_the_answer_and_not_the_token(tmp_path):
    for status in (404, 410):
        with (
            SourceServer(BODY, Behaviour(status=status)) as srv,
            pytest.raises(fetch.FetchRefused, match=f"answered HTTP {status}") as err,
        ):
            await fetched(loopback(), srv.url, tmp_path / "part")
        assert "s3cr3t" not in str(err.value) and "/media" not in str(err.value)


async def test_a_declared_length_over_the_cap_is_refused_before_reading(tmp_path):
    with (
        SourceServer(BODY, Behaviour(declared_length=10**12)) as srv,
        pytest.raises(fetch.FetchRefused, match="declares 1,000,000,000,000 bytes"),
    ):
        await fetched(loopback(max_upload_bytes=50_000), srv.url, tmp_path / "part")
    assert not (tmp_path / "part").exists() or (tmp_path / "part").stat().st_size == 0


async def test_a_body_growing_past_the_cap_is_cut(tmp_path):
    with (
        SourceServer(BODY, Behaviour(no_length=True)) as srv,
        pytest.raises(fetch.FetchRefused, match="sent more than 50,000 bytes"),
    ):
        await fetched(loopback(max_upload_bytes=50_000), srv.url, tmp_path / "part")
    assert (tmp_path / "part").stat().st_size <= 50_000


async def test_a_slow_drip_is_cut_by_the_deadline(tmp_path):
    settings = loopback(source_fetch_deadline_seconds=1.5, source_fetch_idle_seconds=1.0)
    with (
        SourceServer(BODY, Behaviour(drip=True)) as srv,
        pytest.raises(fetch.FetchRefused, match="did not send the whole file within 1.5 s"),
    ):
        await fetched(settings, srv.url, tmp_path / "part")


async def test_the_guard_refuses_loopback_by_default_and_rechecks_every_redirect(tmp_path):
    with (
        SourceServer(BODY) as srv,
        pytest.raises(fetch.FetchRefused, match="private or reserved address"),
    ):
        await fetched(Settings(), srv.url, tmp_path / "part")
    assert srv.seen.ranges == []  # refused before connecting
    with (
        SourceServer(BODY, Behaviour(redirect_to="http://169.254.169.254/latest/")) as srv,
        pytest.raises(fetch.FetchRefused, match="never allowed"),
    ):
        await fetched(loopback(), srv.url, tmp_path / "part")
    assert srv.seen.ranges == [None]  # the redirect was checked, never followed


async def test_a_retry_resumes_from_its_heartbeat(tmp_path):
    """A retried attempt on the same worker keeps the bytes its last heartbeat reported."""
    settings = loopback(data_dir=tmp_path / "data")
    acts = FetchActivities(settings, Transfers.from_settings(settings))
    part = scratch.scratch_root() / "fetch-vid1.part"
    part.write_bytes(BODY[:40_000] + b"junk past the heartbeat")
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[{"bytes": 40_000}])
    with SourceServer(BODY) as srv:
        inp = FetchSourceInput("vid1", srv.url, source_key("vid1"))
        result = await env.run(acts.fetch_source, inp)
    assert srv.seen.ranges == ["bytes=40000-"]
    assert result.bytes == len(BODY) and result.shown_url.startswith("http://127.0.0.1:")
    assert open_storage(settings).read_bytes(source_key("vid1")) == BODY
    assert not part.exists()


# --- through the API and the job ------------------------------------------------------------


async def test_the_door_refuses_both_neither_and_a_private_address(client, settings):
    s = api_settings(settings)
    async with api_client(s, client) as http:
        private = {"source_url": (None, "http://10.0.0.7/v")}
        r = await http.post("/v1/videos", headers=AUTH, files=private)
        assert r.status_code == 422 and "source_url" in r.text and "private" in r.text, r.text
        r = await http.post("/v1/videos", headers=AUTH, files={"captions": (None, "false")})
        assert r.status_code == 422 and "source_url" in r.text, r.text
        r = await http.post(
            "/v1/videos",
            headers=AUTH,
            files={"file": ("a.mp4", b"x" * 10, "video/mp4")},
            data={"source_url": "http://example.com/v.mp4"},
        )
        assert r.status_code == 422 and "not both" in r.text, r.text


async def _ingest(client, settings: Settings, url: str) -> dict:
    s = api_settings(settings, **LOOPBACK_ALLOWED)
    async with api_client(s, client) as http:
        form = {"source_url": (None, url), "captions": (None, "false")}
        r = await http.post("/v1/videos", headers=AUTH, files=form)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["job_id"] == f"video-{body['video_id']}" and body["bytes"] == 0
        async with spool_worker(client, s):
            return await wait_video(http, body["video_id"])


@pytest.mark.e2e
async def test_a_url_becomes_a_ready_video(client, settings, clip):
    with SourceServer(clip.read_bytes()) as srv:
        v = await _ingest(client, settings, srv.url)
    assert v["state"] == "ready", v
    job = client.get_workflow_handle(f"video-{v['video_id']}")
    save_history("video-ready-from-url", await job.fetch_history())
    assert v["metadata"]["width"] == 320
    assert {s["name"] for s in v["steps"]} >= {"fetch_source", "probe"}


@pytest.mark.e2e
async def test_a_dropped_connection_is_resumed_and_the_job_ends_ready(client, settings, clip):
    data = clip.read_bytes()
    with SourceServer(data, Behaviour(drop_first_after=len(data) // 2)) as srv:
        v = await _ingest(client, settings, srv.url)
    assert v["state"] == "ready", v
    assert srv.seen.ranges[:2] == [None, f"bytes={len(data) // 2}-"]


async def test_an_oversize_declared_length_fails_the_job_before_reading(client, settings):
    with SourceServer(BODY, Behaviour(declared_length=10**12)) as srv:
        v = await _ingest(client, settings, srv.url)
    assert v["state"] == "failed", v
    assert "declares 1,000,000,000,000 bytes" in str(v), v
    steps = {s["name"]: s["state"] for s in v["steps"]}
    assert steps["fetch_source"] == "failed" and steps["probe"] == "skipped", steps


@pytest.mark.e2e
async def test_a_404_fails_the_job_naming_the_answer(client, settings):
    with SourceServer(BODY, Behaviour(status=404)) as srv:
        v = await _ingest(client, settings, srv.url)
    assert v["state"] == "failed", v
    assert "answered HTTP 404" in str(v), v
    assert "s3cr3t" not in str(v)


@pytest.mark.e2e
async def test_a_body_that_is_not_a_video_says_it_came_from_the_url(client, settings):
    with SourceServer(BODY) as srv:
        v = await _ingest(client, settings, srv.url)
    assert v["state"] == "failed", v
    assert "the file fetched from http://127.0.0.1:" in str(v), v
