"""The web page's resumable upload in headless Chromium, through a proxy that cuts it: the
first request stalls mid-body and the page is reloaded (the same file, chosen again, goes on
from the offset the API kept: tus-js-client's URL storage), then the next request's socket is
dropped (tus-js-client retries from the API's offset); the video's job ends ready."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from spool.db import get_engine
from spool.db.uploads import get_upload, uploads
from spool.storage import keys, open_storage
from tests.support import media_clips
from tests.support.api import api_settings
from tests.support.body_reads import BodyReads
from tests.support.browser import chromium_page, playwright_api
from tests.support.dropping_proxy import DroppingProxy
from tests.support.live_api import live_api
from tests.support.services import service_missing
from tests.support.waiting import eventually
from tests.support.workers import spool_worker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def upload_clip(tmp_path_factory):
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    return media_clips.make_clip(
        tmp_path_factory.mktemp("resumable") / "walk.mp4", width=640, height=360, seconds=3
    )


def upload_rows(settings) -> list:
    with get_engine(settings).connect() as conn:
        ids = list(conn.execute(uploads.select().with_only_columns(uploads.c.upload_id)).scalars())
    return [get_upload(get_engine(settings), upload_id) for upload_id in ids]


def kept_and_free(settings) -> bool:
    """One upload, holding some bytes, that no request is writing."""
    with get_engine(settings).connect() as conn:
        found = conn.execute(uploads.select()).all()
    return len(found) == 1 and found[0].received > 0 and found[0].lease_owner is None


async def choose_and_upload(page, clip) -> None:
    await page.uncheck("#captions")
    await page.fill("#renditions", "360p")
    await page.set_input_files("#file", str(clip))
    await page.click("#upload-btn")


async def test_the_page_resumes_after_a_reload_and_a_dropped_socket(client, settings, upload_clip):
    async_playwright, expect = playwright_api()
    s = api_settings(settings, api_expose_key_to_localhost=True)
    size = upload_clip.stat().st_size
    errors: list[str] = []
    reads = BodyReads()  # the stall waits until the API holds some of the first bytes
    async with live_api(s, client, wrap=reads.around) as base:
        proxy = DroppingProxy(
            urlsplit(base).port, drop_after=size // 3, stall_first=True, app_reads=reads
        )
        with proxy:
            async with async_playwright() as pw, chromium_page(pw, errors) as page:
                await page.goto(proxy.url + "/")
                await expect(page.locator("#keystate")).to_have_text("API key set")
                await choose_and_upload(page, upload_clip)
                assert await asyncio.to_thread(proxy.stalled.wait, 60)
                await page.reload()  # the stalled request is given up with the page
                await eventually(lambda: kept_and_free(s), "the API kept the first bytes")
                (first,) = upload_rows(s)
                await expect(page.locator("#keystate")).to_have_text("API key set")
                await choose_and_upload(page, upload_clip)
                await expect(page.locator("#job-state")).to_have_text("Processing…", timeout=60_000)
                assert proxy.dropped.is_set()
                (done,) = upload_rows(s)  # the same upload, resumed: no second one
                assert done.upload_id == first.upload_id and done.job_id
                async with spool_worker(client, s):
                    await expect(page.locator("#job-state")).to_have_text("Ready", timeout=180_000)
    assert 0 < first.received < size
    stored = open_storage(s).read_bytes(keys.source_key(done.video_id))
    assert stored == upload_clip.read_bytes()
    assert errors == [], errors
