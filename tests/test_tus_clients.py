"""Interoperability: tus clients Spool did not write (tuspy, tus-js-client under Node) upload
through the real API over HTTP, are cut off mid-body by a proxy that drops the socket, and
resume from the offset the API kept, ending with the video's one job."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from urllib.parse import urlsplit

import httpx
import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from spool.storage import keys, open_storage
from tests.support.api import API_KEY, AUTH, api_settings
from tests.support.body_reads import BodyReads
from tests.support.dropping_proxy import DroppingProxy
from tests.support.live_api import live_api
from tests.support.paths import REPO
from tests.support.services import service_missing
from tests.support.tus import TUS
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

SIZE = 3 * 1024 * 1024 + 17
NODE_SCRIPT = REPO / "tests" / "support" / "tus_node_upload.cjs"


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(SIZE))
    return path


async def settled_offset(base: str, url: str) -> int:
    """The upload's offset once the API has let go of the cut request (its lease freed, so
    the offset no longer moves): a PATCH at that offset would be taken."""

    async def settled() -> int | None:
        async with httpx.AsyncClient() as http:
            r = await http.head(url, headers={**AUTH, **TUS})
            assert r.status_code == 200, r.text
            offset = int(r.headers["Upload-Offset"])
            probe = await http.patch(
                url,
                headers={
                    **AUTH,
                    **TUS,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
                content=b"",
            )
            return offset if probe.status_code == 204 else None

    return await eventually(settled, "the cut request let go of the upload", within=60)


def tuspy_first_attempt(endpoint: str, path) -> str:
    uploader = tus_client.TusClient(endpoint, headers=AUTH).uploader(
        str(path), chunk_size=SIZE, metadata={"filename": "clip.mp4"}, upload_checksum=False
    )
    uploader.set_url(uploader.create_url())
    with pytest.raises((TusUploadFailed, TusCommunicationError)):
        uploader.upload()
    return uploader.url


def tuspy_resume(endpoint: str, url: str, path) -> tuple[int, dict]:
    uploader = tus_client.TusClient(endpoint, headers=AUTH).uploader(
        str(path), url=url, chunk_size=1024 * 1024, upload_checksum=True
    )
    resumed_at = uploader.offset  # from its HEAD
    uploader.upload()
    return resumed_at, uploader.request.response_headers


async def test_tuspy_resumes_after_the_socket_is_dropped(client, settings, source):
    s = api_settings(settings)
    reads = BodyReads()  # the cut waits until the API holds some of the bytes
    async with live_api(s, client, wrap=reads.around) as base:
        port = urlsplit(base).port
        with DroppingProxy(port, drop_after=SIZE // 2, app_reads=reads) as proxy:
            url = await asyncio.to_thread(tuspy_first_attempt, f"{proxy.url}/v1/uploads", source)
            assert proxy.dropped.is_set()
        url = base + urlsplit(url).path
        kept = await settled_offset(base, url)
        assert 0 < kept < SIZE
        resumed_at, headers = await asyncio.to_thread(
            tuspy_resume, f"{base}/v1/uploads", url, source
        )
    assert resumed_at == kept
    video_id = headers["spool-video-id"]
    assert headers["spool-job-id"] == f"video-{video_id}"
    assert open_storage(s).read_bytes(keys.source_key(video_id)) == source.read_bytes()


def node_upload(endpoint: str, path, resume_url: str | None = None) -> dict:
    args = ["node", str(NODE_SCRIPT), endpoint, str(path), API_KEY]
    done = subprocess.run(
        [*args, *([resume_url] if resume_url else [])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_tus_js_client_under_node_resumes_after_the_socket_is_dropped(
    client, settings, source
):
    if shutil.which("node") is None or not (REPO / "node_modules/tus-js-client").is_dir():
        service_missing("node and tus-js-client (`make install`) are needed")
    s = api_settings(settings)
    reads = BodyReads()  # the cut waits until the API holds some of the bytes
    async with live_api(s, client, wrap=reads.around) as base:
        with DroppingProxy(urlsplit(base).port, drop_after=SIZE // 3, app_reads=reads) as proxy:
            first = await asyncio.to_thread(node_upload, f"{proxy.url}/v1/uploads", source)
            assert proxy.dropped.is_set() and "error" in first, first
        url = base + urlsplit(first["url"]).path
        kept = await settled_offset(base, url)
        assert 0 < kept < SIZE
        second = await asyncio.to_thread(node_upload, f"{base}/v1/uploads", source, url)
    assert "error" not in second, second
    assert second["Upload-Offset"] == str(SIZE)
    video_id = second["Spool-Video-Id"]
    assert second["Spool-Job-Id"] == f"video-{video_id}"
    assert open_storage(s).read_bytes(keys.source_key(video_id)) == source.read_bytes()
