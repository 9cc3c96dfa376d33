"""Resumable uploads on S3 (S3Proxy): one multipart upload per upload, whole parts of at
least 5 MiB sent as they fill, the bytes short of a part kept in a tail object between
requests, taken up by another API after a restart; terminated and expired uploads leave
nothing in the store. Direct uploads: parts PUT by a plain HTTP client to presigned URLs,
checked and completed by the API."""

from __future__ import annotations

import os

import httpx
import pytest

from spool.db import get_engine
from spool.db.uploads import get_upload
from spool.storage import keys, open_storage
from tests.support.api import AUTH, api_app, api_settings, assert_error
from tests.support.tus import HEADERS, create, offset_of, patch

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
DATA = os.urandom(11 * MiB + 5)


def unfinished_multipart_uploads(settings) -> list[dict]:
    storage = open_storage(settings)
    listed = storage.client.list_multipart_uploads(Bucket=storage.bucket)
    return listed.get("Uploads") or []


def upload_objects(settings) -> list[str]:
    storage = open_storage(settings)
    found = storage.client.list_objects_v2(
        Bucket=storage.bucket, Prefix=f"{storage.prefix}/uploads/"
    )
    return [o["Key"] for o in found.get("Contents") or ()]


@pytest.fixture
def s3(settings, s3_settings_factory):
    return s3_settings_factory(api_settings(settings), storage_part_size_mb=5)


async def test_parts_and_tails_survive_a_restart_and_complete_once(client, s3):
    async with api_app(s3, client) as (_, http):
        location = (await create(http, len(DATA))).headers["Location"]
        upload_id = location.rsplit("/", 1)[1]
        assert (await patch(http, location, 0, DATA[: 3 * MiB])).status_code == 204
        assert (await patch(http, location, 3 * MiB, DATA[3 * MiB : 7 * MiB])).status_code == 204
    row = get_upload(get_engine(s3), upload_id)
    assert row is not None and row.received == 7 * MiB
    assert [size for _, _, size in row.parts] == [5 * MiB] and row.tail_bytes == 2 * MiB
    assert row.tail_key and upload_objects(s3) == [open_storage(s3)._object_key(row.tail_key)]
    async with api_app(s3, client) as (_, http):  # another process: nothing in memory
        assert await offset_of(http, location) == 7 * MiB
        last = await patch(http, location, 7 * MiB, DATA[7 * MiB :])
        assert last.status_code == 204, last.text
        video_id = last.headers["Spool-Video-Id"]
        assert last.headers["Spool-Job-Id"] == f"video-{video_id}"
        again = await patch(http, location, len(DATA), b"")
        assert again.headers["Spool-Job-Id"] == last.headers["Spool-Job-Id"]
    assert open_storage(s3).read_bytes(keys.source_key(video_id)) == DATA
    assert unfinished_multipart_uploads(s3) == [] and upload_objects(s3) == []


async def test_terminated_and_expired_uploads_leave_nothing(client, s3):
    async with api_app(s3, client) as (app, http):
        ended = (await create(http, len(DATA))).headers["Location"]
        left = (await create(http, len(DATA))).headers["Location"]
        for location in (ended, left):
            assert (await patch(http, location, 0, DATA[: 6 * MiB])).status_code == 204
        assert len(unfinished_multipart_uploads(s3)) == 2 and len(upload_objects(s3)) == 2
        assert (await http.delete(ended, headers=HEADERS)).status_code == 204
        assert (await http.head(ended, headers=HEADERS)).status_code == 410
        assert len(unfinished_multipart_uploads(s3)) == 1 and len(upload_objects(s3)) == 1
        later = app.state.services.clock() + s3.upload_expiry_seconds + 1
        app.state.services.clock = lambda: later
        from api.routes.uploads import upload_service

        assert await upload_service(app.state.services).sweep() == 1
        assert (await http.head(left, headers=HEADERS)).status_code == 410
    assert unfinished_multipart_uploads(s3) == [] and upload_objects(s3) == []


async def test_direct_upload_parts_skip_the_api_and_are_checked(client, s3):
    async with api_app(s3, client) as (_, http), httpx.AsyncClient(timeout=60) as plain:
        created = await http.post(
            "/v1/uploads/direct", headers=AUTH, json={"length": len(DATA), "renditions": "360p"}
        )
        assert created.status_code == 201, created.text
        direct = created.json()
        size = direct["part_bytes"]
        assert size == 5 * MiB and [p["number"] for p in direct["parts"]] == [1, 2, 3]
        urls = [p["url"] for p in direct["parts"]]
        pieces = [DATA[i * size : (i + 1) * size] for i in range(3)]

        async def put(number: int, body: bytes) -> None:
            r = await plain.put(urls[number - 1], content=body)
            assert r.status_code == 200, r.text

        await put(1, pieces[0])
        await put(3, pieces[2])
        missing = await http.post(direct["complete_url"], headers=AUTH)
        assert "missing [2]" in assert_error(missing, 409)["message"]
        await put(2, b"short")
        short = await http.post(direct["complete_url"], headers=AUTH)
        assert "part 2 holds 5 bytes" in assert_error(short, 409)["message"]
        await put(2, pieces[1])
        done = await http.post(direct["complete_url"], headers=AUTH)
        assert done.status_code == 202, done.text
        again = await http.post(direct["complete_url"], headers=AUTH)
        assert again.json() == done.json()
        assert done.json()["job_id"] == f"video-{direct['video_id']}"
    assert open_storage(s3).read_bytes(keys.source_key(direct["video_id"])) == DATA
    assert unfinished_multipart_uploads(s3) == []


async def test_direct_uploads_need_an_s3_store(client, settings):
    async with api_app(api_settings(settings), client) as (_, http):
        r = await http.post("/v1/uploads/direct", headers=AUTH, json={"length": 10})
    assert "S3" in assert_error(r, 409)["message"]


async def test_one_long_request_sends_its_parts_several_at_once_in_order(client, s3):
    # Six parts, more than are sent at once: one sent out of order would scramble the bytes.
    data = os.urandom(26 * MiB + 1)
    async with api_app(s3, client) as (_, http):
        location = (await create(http, len(data))).headers["Location"]
        last = await patch(http, location, 0, data)
        assert last.status_code == 204, last.text
    stored = open_storage(s3)
    video_id = last.headers["Spool-Video-Id"]
    assert stored.read_bytes(keys.source_key(video_id)) == data
