"""Resumable uploads (tus 1.0 at /v1/uploads) on the local store: the protocol, its errors,
resuming through a restarted API and a second API, the one job, expiry and per-key limits.

The job is started on the Temporal dev server; no worker runs, so nothing but the start is
checked here (the pipeline itself is tested elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from devstack.proc import free_port, start_process, stop_process, wait_for_port
from spool.storage import keys, open_storage
from spool.storage.local import INCOMING
from tests.support.api import API_KEY, AUTH, api_app, api_settings, assert_error
from tests.support.live_api import live_api
from tests.support.paths import REPO
from tests.support.tus import (
    HEADERS,
    STREAM,
    TUS,
    create,
    offset_of,
    patch,
    sha1_header,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.orchestration

DATA = os.urandom(300_000)


def stored_source(settings, video_id: str) -> bytes:
    return open_storage(settings).read_bytes(keys.source_key(video_id))


async def jobs_of(client, video_id: str) -> list[str]:
    """The runs of the video's job: one, started by whichever request took the last byte
    (the workflow id is the video's, so no second run could start)."""
    description = await client.get_workflow_handle(f"video-{video_id}").describe()
    return [description.id] if description.run_id else []


async def test_options_say_what_the_server_speaks(client, settings):
    async with api_app(api_settings(settings), client) as (_, http):
        r = await http.options("/v1/uploads")
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    }
    assert r.headers["Tus-Checksum-Algorithm"] == "sha1"
    assert int(r.headers["Tus-Max-Size"]) == settings.max_upload_bytes


async def test_pieces_make_the_source_and_start_one_job(client, settings):
    s = api_settings(settings)
    async with api_app(s, client) as (_, http):
        created = await create(http, len(DATA), filename="a b.mp4", renditions="360p")
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        assert location.startswith("/v1/uploads/") and "Upload-Expires" in created.headers
        first = await patch(
            http, location, 0, DATA[:100_000], Upload_Checksum=sha1_header(DATA[:100_000])
        )
        assert first.status_code == 204 and first.headers["Upload-Offset"] == "100000"
        assert "Spool-Job-Id" not in first.headers
        head = await http.head(location, headers=HEADERS)
        assert head.headers["Upload-Length"] == str(len(DATA))
        assert head.headers["Upload-Metadata"] == created.request.headers["Upload-Metadata"]
        assert head.headers["Cache-Control"] == "no-store"
        await patch(http, location, 100_000, DATA[100_000:200_000])
        last = await patch(http, location, 200_000, DATA[200_000:])
        assert last.status_code == 204, last.text
        video_id, job_id = last.headers["Spool-Video-Id"], last.headers["Spool-Job-Id"]
        assert job_id == f"video-{video_id}" and video_id == created.headers["Spool-Video-Id"]
        assert last.headers["Spool-Status-Url"] == f"/v1/videos/{video_id}"
        # The same last request again: refused at its offset, and still one job; an empty
        # request at the end answers the same job.
        again = await patch(http, location, 200_000, DATA[200_000:])
        assert_error(again, 409, "Upload-Offset")
        at_end = await patch(http, location, len(DATA), b"")
        assert at_end.status_code == 204 and at_end.headers["Spool-Job-Id"] == job_id
        view = (await http.get(f"/v1/videos/{video_id}")).json()
        assert view["state"] == "processing"
    assert stored_source(s, video_id) == DATA
    assert await jobs_of(client, video_id) == [job_id]
    description = await client.get_workflow_handle(job_id).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert not list((s.resolved_storage_dir / INCOMING).glob("tus-*"))


async def test_a_resumable_upload_is_promised_its_deletion_like_a_form_upload(client, settings):
    """delete_after in Upload-Metadata (or the server's retention) starts the video's
    deletion job waiting before its processing job starts, as a form upload's does."""
    s = api_settings(settings, video_retention_days=30)
    soon = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    async with api_app(s, client) as (_, http):
        asked = await create(http, len(DATA), delete_after=soon.isoformat())
        kept = await create(http, len(DATA))
        bad = await create(http, len(DATA), delete_after="tomorrow")
        assert_error(bad, 422, "delete_after")
        videos = []
        for created in (asked, kept):
            last = await patch(http, created.headers["Location"], 0, DATA)
            assert last.status_code == 204, last.text
            videos.append(last.headers["Spool-Video-Id"])
    for video_id in videos:
        deletion = client.get_workflow_handle(f"delete-video-{video_id}")
        assert (await deletion.describe()).status == WorkflowExecutionStatus.RUNNING
        for handle in (deletion, client.get_workflow_handle(f"video-{video_id}")):
            await handle.terminate("the test is over")  # no worker runs either here
    first = await client.get_workflow_handle(f"delete-video-{videos[0]}").fetch_history()
    started = first.events[0].workflow_execution_started_event_attributes
    payload = json.loads(started.input.payloads[0].data)
    assert payload["delete_at"] == soon.timestamp()


async def test_creation_with_upload_takes_the_whole_body(client, settings):
    s = api_settings(settings)
    async with api_app(s, client) as (_, http):
        headers = {**HEADERS, **STREAM, "Upload-Length": str(len(DATA))}
        r = await http.post("/v1/uploads", headers=headers, content=DATA)
        assert r.status_code == 201, r.text
        assert r.headers["Upload-Offset"] == str(len(DATA)) and r.headers["Spool-Job-Id"]
    assert stored_source(s, r.headers["Spool-Video-Id"]) == DATA


async def test_each_wrong_request_is_refused_naming_its_problem(client, settings):
    s = api_settings(settings, max_upload_bytes=len(DATA))
    async with api_app(s, client) as (app, http):
        no_version = await http.post("/v1/uploads", headers={**AUTH, "Upload-Length": "10"})
        assert_error(no_version, 412, "Tus-Resumable")
        assert no_version.headers["Tus-Version"] == "1.0.0"
        assert_error(await http.post("/v1/uploads", headers={**TUS, "Upload-Length": "1"}), 401)
        assert_error(await create(http, len(DATA) + 1), 413)
        assert_error(await http.post("/v1/uploads", headers=HEADERS), 400, "Upload-Length")
        bad_meta = await http.post(
            "/v1/uploads", headers={**HEADERS, "Upload-Length": "9", "Upload-Metadata": "a !!"}
        )
        assert_error(bad_meta, 400, "Upload-Metadata")
        assert_error(await create(http, 9, renditions="999p"), 422, "renditions")
        location = (await create(http, len(DATA))).headers["Location"]
        assert_error(await patch(http, location, 5, b"x"), 409, "Upload-Offset")
        past = await patch(http, location, 0, DATA + b"more")
        assert_error(past, 413)
        mismatch = await patch(http, location, 0, DATA[:1000], Upload_Checksum=sha1_header(b"x"))
        assert_error(mismatch, 460)
        assert await offset_of(http, location) == 0  # nothing of a mismatched body is kept
        other_algorithm = await patch(http, location, 0, b"x", Upload_Checksum="md5 AAAA")
        assert_error(other_algorithm, 400, "Upload-Checksum")
        wrong_type = await http.patch(
            location, headers={**HEADERS, "Upload-Offset": "0"}, content=b"x"
        )
        assert_error(wrong_type, 415, "Content-Type")
        assert (await http.head("/v1/uploads/" + "0" * 32, headers=HEADERS)).status_code == 404
        other_key = {**TUS, "Authorization": "Bearer another-key-0123456789"}
        s.api_keys.append("another-key-0123456789")  # a valid key, not the one that made it
        assert (await http.head(location, headers=other_key)).status_code == 404
        assert (await http.delete(location, headers=HEADERS)).status_code == 204
        gone = await patch(http, location, 0, b"x")
        assert_error(gone, 410)
        assert "terminated" in gone.json()["error"]["message"]


async def test_an_upload_resumes_through_a_restarted_api(client, settings):
    s = api_settings(settings)
    async with api_app(s, client) as (_, http):
        location = (await create(http, len(DATA))).headers["Location"]
        assert (await patch(http, location, 0, DATA[:120_000])).status_code == 204
    async with api_app(s, client) as (_, http):  # the API restarted: nothing in memory
        offset = await offset_of(http, location)
        assert offset == 120_000
        last = await patch(http, location, offset, DATA[offset:])
        assert last.status_code == 204, last.text
    assert stored_source(s, last.headers["Spool-Video-Id"]) == DATA


async def test_two_apis_share_an_upload_and_race_to_one_job(client, settings):
    s = api_settings(settings)
    async with api_app(s, client) as (_, one), api_app(s, client) as (_, two):
        location = (await create(one, len(DATA))).headers["Location"]
        assert (await patch(two, location, 0, DATA[:150_000])).status_code == 204
        assert await offset_of(one, location) == 150_000
        # Both hosts get the last bytes at once: one takes them, the other is refused.
        answers = await asyncio.gather(
            patch(one, location, 150_000, DATA[150_000:]),
            patch(two, location, 150_000, DATA[150_000:]),
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses[0] == 204 and statuses[1] in (409, 423), [a.text for a in answers]
        video_id = answers[0].headers.get("Spool-Video-Id") or answers[1].headers["Spool-Video-Id"]
        heads = [
            await one.head(location, headers=HEADERS),
            await two.head(location, headers=HEADERS),
        ]
        assert {h.headers["Spool-Job-Id"] for h in heads} == {f"video-{video_id}"}
    assert await jobs_of(client, video_id) == [f"video-{video_id}"]
    assert stored_source(s, video_id) == DATA


async def test_expired_uploads_are_refused_and_swept(client, settings):
    s = api_settings(settings)
    async with api_app(s, client) as (app, http):
        location = (await create(http, len(DATA))).headers["Location"]
        assert (await patch(http, location, 0, DATA[:1000])).status_code == 204
        partials = list((s.resolved_storage_dir / INCOMING).glob("tus-*.part"))
        assert len(partials) == 1
        later = app.state.services.clock() + s.upload_expiry_seconds + 1
        app.state.services.clock = lambda: later
        expired = await patch(http, location, 1000, DATA[1000:2000])
        assert_error(expired, 410)
        assert "expired" in expired.json()["error"]["message"]
        from api.routes.uploads import upload_service

        assert await upload_service(app.state.services).sweep() == 1
        assert not partials[0].exists()
        assert (await http.head(location, headers=HEADERS)).status_code == 410


async def test_each_key_has_a_number_and_bytes_of_unfinished_uploads(client, settings):
    s = api_settings(settings, upload_max_per_key=2, upload_max_bytes_per_key=1000)
    async with api_app(s, client) as (_, http):
        first = (await create(http, 400)).headers["Location"]
        assert (await create(http, 400)).status_code == 201
        too_many = await create(http, 10)
        assert_error(too_many, 429)
        assert int(too_many.headers["Retry-After"]) > 0
        assert (await http.delete(first, headers=HEADERS)).status_code == 204
        assert_error(await create(http, 700), 429)  # 400 + 700 bytes awaited > 1000
        assert (await create(http, 600)).status_code == 201


def slow_loris(port: int, location: str) -> tuple[bytes, int]:
    """A PATCH that sends its body one byte at a time, a quarter second apart, until the API
    answers; the answer's first line and the bytes sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
        "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    sock.sendall(head.encode())
    sent, deadline = 0, time.monotonic() + 60
    with sock:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.25)  # the client's pace
            if readable:
                return sock.recv(4096).split(b"\r\n", 1)[0], sent
            sock.sendall(b"x")
            sent += 1
    raise AssertionError("the API never cut the slow request")


async def test_a_one_byte_a_second_body_is_cut_and_what_came_is_kept(client, settings):
    s = api_settings(settings, upload_idle_seconds=1.0)
    async with live_api(s, client) as base, httpx.AsyncClient(base_url=base) as http:
        location = (await create(http, 100_000)).headers["Location"]
        status, sent = await asyncio.to_thread(slow_loris, urlsplit(base).port, location)
        assert b" 408 " in status, status
        kept = await eventually(
            lambda: offset_of(http, location), "the cut request's bytes recorded"
        )
        assert 0 < kept <= sent


@contextlib.contextmanager
def api_process(settings, tmp_path):
    """``python -m api`` in a process of its own, on the test's database, store and
    Temporal: another API host as far as an upload can tell."""
    port = free_port()
    env = {
        "SPOOL_TEMPORAL_ADDRESS": settings.temporal_address,
        "SPOOL_DATA_DIR": str(settings.data_dir),
        "SPOOL_QUEUE_PIPELINE": settings.queue_pipeline,
        "SPOOL_API_KEYS": json.dumps([API_KEY]),
        "SPOOL_API_PORT": str(port),
    }
    proc = start_process([sys.executable, "-m", "api"], tmp_path / "api.log", env=env, cwd=REPO)
    try:
        wait_for_port(port, timeout=60, proc=proc, what="the second API")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


async def test_an_upload_goes_on_through_another_api_process(client, settings, tmp_path):
    s = api_settings(settings)
    with api_process(s, tmp_path) as other:
        async with (
            api_app(s, client) as (_, here),
            httpx.AsyncClient(base_url=other, timeout=60) as there,
        ):
            location = (await create(here, len(DATA))).headers["Location"]
            assert (await patch(there, location, 0, DATA[:100_000])).status_code == 204
            assert await offset_of(here, location) == 100_000
            assert (await patch(here, location, 100_000, DATA[100_000:200_000])).status_code == 204
            answers = await asyncio.gather(
                patch(here, location, 200_000, DATA[200_000:]),
                patch(there, location, 200_000, DATA[200_000:]),
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses[0] == 204 and statuses[1] in (409, 423), [a.text for a in answers]
            video_id = (await there.head(location, headers=HEADERS)).headers["Spool-Video-Id"]
    assert stored_source(s, video_id) == DATA
    assert await jobs_of(client, video_id) == [f"video-{video_id}"]
