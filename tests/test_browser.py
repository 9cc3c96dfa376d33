"""The web page in headless Chromium (Debian's, never a downloaded one) against the API served
by uvicorn on a free port, with a real worker: upload, "Processing…", ready, captions, renditions.

Screenshots of each state go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import pytest
import uvicorn

from api import create_app
from devstack.proc import free_port
from tests import media_clips
from tests.conftest import ARTIFACTS, service_missing
from tests.test_api import api_settings, spool_worker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ARTIFACTS / "screenshots"


@contextlib.asynccontextmanager
async def served(app, port: int):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture(scope="module")
def browser_clip(tmp_path_factory) -> Path:
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    # 480 lines: two renditions (480p, 360p) for the selector.
    return media_clips.make_clip(tmp_path_factory.mktemp("browser") / "talk.mp4",
                                 width=854, height=480, seconds=2.5)


async def test_upload_watch_and_caption_in_the_browser(client, settings, browser_clip):
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError as exc:
        service_missing(f"playwright not installed: {exc}")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        service_missing(f"{CHROMIUM} not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    s = api_settings(settings, api_expose_key_to_localhost=True)
    app = create_app(s, client=client)
    async with served(app, free_port()) as base, async_playwright() as pw:
        try:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001
            service_missing(f"chromium did not start: {exc}")
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(base + "/")
            await expect(page.locator("#keystate")).to_have_text("API key set")
            await page.set_input_files("#file", str(browser_clip))
            await page.click("#upload-btn")
            # Acknowledged, and no worker yet: the job page says Processing….
            await expect(page.locator("#job-state")).to_have_text("Processing…", timeout=10_000)
            assert await page.eval_on_selector("#upload-progress", "p => p.value") == 100
            await page.screenshot(path=str(SHOTS / "1-processing.png"), full_page=True)
            async with spool_worker(client, s):
                await expect(page.locator("#job-state")).to_have_text("Ready", timeout=120_000)
                await expect(page.locator("#player-box")).to_be_visible()
                await page.screenshot(path=str(SHOTS / "2-ready.png"), full_page=True)
                button = page.locator("#captions-btn")
                await expect(button).to_be_enabled(timeout=120_000)
            await page.wait_for_function(
                "document.getElementById('player').readyState >= 1", timeout=20_000)
            await button.click()
            await page.wait_for_function(
                "(() => { const t = document.getElementById('player').textTracks[0];"
                " return t && t.mode === 'showing' && t.cues && t.cues.length > 0; })()",
                timeout=20_000)
            cue_text = await page.evaluate(
                "Array.from(document.getElementById('player').textTracks[0].cues)"
                ".map(c => c.text).join(' ')")
            heard = set(media_clips.normalized_words(cue_text))
            assert heard & {"hello", "world", "test", "simple"}, cue_text
            await page.evaluate("document.getElementById('player').currentTime = 1.0")
            await page.screenshot(path=str(SHOTS / "3-captions-on.png"), full_page=True)
            options = await page.eval_on_selector_all(
                "#rendition option", "os => os.map(o => o.value)")
            assert [o.rsplit("/", 1)[-1] for o in options] == ["480p", "360p"]
            src = await page.eval_on_selector("#player", "v => v.currentSrc || v.src")
            assert src.endswith("/renditions/480p")
            await page.select_option("#rendition", options[1])
            await page.wait_for_function(
                "document.getElementById('player').src.endsWith('/renditions/360p')")
            await page.wait_for_function(
                "document.getElementById('player').readyState >= 1", timeout=20_000)
            await expect(page.locator("#jobs tbody tr").first).to_contain_text("Ready")
            await page.screenshot(path=str(SHOTS / "4-rendition-360p.png"), full_page=True)
            assert errors == [], errors
        finally:
            await browser.close()
