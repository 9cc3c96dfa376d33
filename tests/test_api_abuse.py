"""The HTTP API under abuse, in-process over ASGI against the real Temporal dev server: bodies
too big or too deep, wrong content types, slow and concurrent and abandoned uploads, odd
multipart. Every refusal is a 4xx in the one error shape and leaves nothing in storage; every
upload that is accepted is stored whole under Spool's own key."""

from __future__ import annotations

import asyncio
import importlib.util
import json

import pytest

from api import create_app
from spool.config import Settings
from spool.storage import keys, open_storage
from tests.support.api import AUTH, api_client, api_settings, assert_error, storage_files

pytestmark = pytest.mark.orchestration

POST = {"post_id": "abuse-1", "author_id": "ada", "title": "Title", "body": "Body"}
BOUNDARY = "spool-abuse-boundary"
MULTIPART = {**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
JSON_CAP = 64 * 1024
# The JSON body cap lives in api/limits.py (another change): until it lands, the 413 test is
# expected to fail, and strict xfail reports the day it starts passing.
JSON_CAP_MISSING = importlib.util.find_spec("api.limits") is None


def file_part(data: bytes, *, filename: str = "clip.mp4", name: str = "file") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )


def field_part(name: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def closing() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode()


def stored_sources(settings: Settings) -> dict[str, bytes]:
    """Every object in storage, by key (so a stray key is seen too)."""
    root = settings.resolved_storage_dir
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in storage_files(settings)}


# --- JSON ---------------------------------------------------------------------------------------


@pytest.mark.xfail(
    JSON_CAP_MISSING, strict=True, reason="api/limits.py (streaming JSON body cap) not merged yet"
)
async def test_oversized_json_is_413_whether_declared_or_streamed(client, settings):
    s = api_settings(settings, api_max_json_bytes=JSON_CAP)
    big = json.dumps({**POST, "body": "x" * (2 * JSON_CAP)}).encode()
    async with api_client(s, client) as http:
        headers = {**AUTH, "Content-Type": "application/json"}
        assert_error(await http.post("/v1/posts", content=big, headers=headers), 413)

        async def streamed():  # no Content-Length: the cap must hold while reading
            for i in range(0, len(big), 4096):
                yield big[i : i + 4096]

        assert_error(await http.post("/v1/posts", content=streamed(), headers=headers), 413)
        fits = await http.post("/v1/posts", json=POST, headers=AUTH)
        assert fits.status_code == 202, fits.text


async def test_deeply_nested_json_is_a_4xx_not_a_crash(client, settings):
    # A cap on bytes (if any) must not be what refuses it: 100k levels in 200 KB.
    s = api_settings(settings, api_max_json_bytes=8 * 1024 * 1024)
    depth = 100_000
    async with api_client(s, client) as http:
        nested = "[" * depth + "]" * depth
        for body in (nested, json.dumps(POST)[:-1] + f', "tags": {nested}}}'):
            r = await http.post(
                "/v1/posts",
                content=body.encode(),
                headers={**AUTH, "Content-Type": "application/json"},
            )
            assert 400 <= r.status_code < 500, r.text
            print(f"\nnested JSON: {r.status_code} {assert_error(r, r.status_code)}")
        # The server is fine afterwards.
        assert (await http.post("/v1/posts", json=POST, headers=AUTH)).status_code == 202


# --- content types --------------------------------------------------------------------------------

WRONG_FOR_VIDEOS = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "video/mp4",
    "multipart/mixed; boundary=x",
]
WRONG_FOR_POSTS = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/xml",
    f"multipart/form-data; boundary={BOUNDARY}",
    "application/octet-stream",
]


async def test_wrong_content_types_on_every_write_endpoint(client, settings):
    s = api_settings(settings)
    async with api_client(s, client) as http:
        for ctype in WRONG_FOR_VIDEOS:
            r = await http.post(
                "/v1/videos",
                content=json.dumps({"file": "x"}).encode(),
                headers={**AUTH, "Content-Type": ctype},
            )
            err = assert_error(r, 415)
            assert "multipart/form-data" in err["message"], err
        r = await http.post(
            "/v1/videos",
            content=b"--x\r\n",
            headers={**AUTH, "Content-Type": "multipart/form-data"},
        )
        assert "boundary" in assert_error(r, 400)["message"]
        for ctype in WRONG_FOR_POSTS:
            r = await http.post(
                "/v1/posts",
                content=json.dumps(POST).encode(),
                headers={**AUTH, "Content-Type": ctype},
            )
            err = assert_error(r, 415)
            assert "application/json" in err["message"], err
        # DELETE /v1/videos/{id}/job takes no body: whatever is sent, the answer is about the
        # job, in the same shape.
        r = await http.request(
            "DELETE",
            "/v1/videos/none/job",
            content=b"<x/>",
            headers={**AUTH, "Content-Type": "application/xml"},
        )
        assert_error(r, 404)
    assert storage_files(s) == []


# --- uploads -----------------------------------------------------------------------------------


async def test_a_slow_upload_completes_and_blocks_nothing_meanwhile(client, settings):
    s = api_settings(settings, api_upload_chunk_bytes=4096)
    payload = bytes(range(256)) * 400  # 100 KiB
    mid_body = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_body():
        head, tail = payload[:50_000], payload[50_000:]
        yield file_part(head)[:-2]  # the part's headers and the first half of its data
        mid_body.set()
        await go_on.wait()  # the test decides when the rest arrives
        for i in range(0, len(tail), 1000):
            yield tail[i : i + 1000]
        yield b"\r\n" + closing()

    async with api_client(s, client) as http:
        slow = asyncio.create_task(http.post("/v1/videos", content=slow_body(), headers=MULTIPART))
        await asyncio.wait_for(mid_body.wait(), 60)
        # Meanwhile: reads and a whole other upload are answered (a generous deadline: a
        # blocked server would never answer before the slow body goes on).
        assert (await asyncio.wait_for(http.get("/healthz"), 60)).status_code == 200
        assert_error(await asyncio.wait_for(http.get("/v1/videos/nobody-here"), 60), 404)
        other = await asyncio.wait_for(
            http.post(
                "/v1/videos", headers=AUTH, files={"file": ("o.mp4", b"other video", "video/mp4")}
            ),
            60,
        )
        assert other.status_code == 202, other.text
        assert not slow.done()
        go_on.set()
        r = await asyncio.wait_for(slow, 60)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["bytes"] == len(payload)
    stored = stored_sources(s)
    assert stored[keys.source_key(body["video_id"])] == payload
    assert stored[keys.source_key(other.json()["video_id"])] == b"other video"
    assert len(stored) == 2


async def test_many_concurrent_uploads_by_one_key_are_all_accepted(client, settings):
    """No per-key concurrency limit: uploads stream to storage under the size cap, so twenty
    at once cost twenty streams; each gets its own job and keeps its own bytes."""
    s = api_settings(settings)
    payloads = [f"video number {i} ".encode() * (100 + i) for i in range(20)]
    async with api_client(s, client) as http:
        answers = await asyncio.gather(
            *[
                http.post("/v1/videos", headers=AUTH, files={"file": ("same-name.mp4", data)})
                for data in payloads
            ]
        )
    assert [r.status_code for r in answers] == [202] * 20, [r.text for r in answers]
    ids = [r.json()["video_id"] for r in answers]
    assert len(set(ids)) == 20
    stored = stored_sources(s)
    assert {keys.source_key(i): data for i, data in zip(ids, payloads, strict=True)} == stored
    for r in answers:
        handle = client.get_workflow_handle(r.json()["job_id"])
        assert (await handle.describe()).id == r.json()["job_id"]


async def test_a_client_that_disconnects_mid_upload_leaves_nothing(client, settings):
    s = api_settings(settings, api_upload_chunk_bytes=4096)
    app = create_app(s, client=client)
    incoming = s.resolved_storage_dir / ".incoming"
    chunks = [file_part(b"\1" * 20_000)[:-2], b"\2" * 20_000]
    seen_partial: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
        # Everything sent so far has reached storage as a pending object: now the client goes.
        seen_partial.extend(p.stat().st_size for p in incoming.glob("*"))
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/videos",
        "raw_path": b"/v1/videos",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in MULTIPART.items()],
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert seen_partial and max(seen_partial) >= 20_000  # the upload really was under way
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert 400 <= start["status"] < 500
    assert storage_files(s) == []
    assert open_storage(s).list_prefix("videos/") == []


async def test_two_file_parts_are_refused_and_leave_nothing(client, settings):
    s = api_settings(settings)
    body = file_part(b"first") + file_part(b"second", filename="b.mp4") + closing()
    async with api_client(s, client) as http:
        r = await http.post("/v1/videos", content=body, headers=MULTIPART)
    assert "only one file" in assert_error(r, 422, "file")["message"]
    assert storage_files(s) == []


async def test_filenames_are_ignored_whatever_they_say(client, settings, tmp_path):
    s = api_settings(settings)
    names = [
        "../../../../etc/cron.d/spool",
        "/tmp/absolute.mp4",
        "..\\..\\windows\\x.mp4",
        "videos/other-video/source",
        "é" * 1000,
        "a\0b.mp4",
        "%2e%2e%2fx.mp4",
    ]
    async with api_client(s, client) as http:
        for i, name in enumerate(names):
            data = f"upload {i}".encode()
            body = file_part(data, filename=name.replace('"', "")) + closing()
            r = await http.post("/v1/videos", content=body, headers=MULTIPART)
            assert r.status_code == 202, (name[:40], r.text)
            assert stored_sources(s)[keys.source_key(r.json()["video_id"])] == data
    stored = stored_sources(s)
    assert len(stored) == len(names)
    assert all(key.startswith("videos/") and key.endswith("/source") for key in stored)
    assert not (tmp_path / "absolute.mp4").exists()
    assert [p for p in tmp_path.rglob("*") if p.name in ("spool", "absolute.mp4", "x.mp4")] == []


async def test_a_huge_filename_or_a_form_flood_is_refused_clearly(client, settings):
    s = api_settings(settings)
    async with api_client(s, client) as http:
        # Held in memory until the part's headers end, so bounded (by python-multipart).
        body = file_part(b"data", filename="n" * 1_000_000) + closing()
        r = await http.post("/v1/videos", content=body, headers=MULTIPART)
        assert "header size exceeded" in assert_error(r, 400)["message"]
        # A form flood by repetition of one name is held to the same count as distinct names.
        body = b"".join(field_part("renditions", "360p") for _ in range(25))
        r = await http.post(
            "/v1/videos", content=body + file_part(b"data") + closing(), headers=MULTIPART
        )
        assert "too many form fields" in assert_error(r, 422)["message"]
    assert storage_files(s) == []
