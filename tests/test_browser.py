"""The web page in headless Chromium (Debian's, never a downloaded one) against the API served
by uvicorn on a free port, with a real worker: upload, "Processing…", ready, captions, renditions.

HLS: the page plays a master playlist with hls.js (installed by `make install` from
package-lock.json), offers Auto and each level in its quality menu, and shows the storyboard
tile of the hovered time over its scrub bar. ``hls_fixture`` builds such a video with ffmpeg
(fMP4 HLS variants, an audio playlist, a master playlist, storyboard sprites and their WebVTT
track), laid out and addressed as the API serves a processed one.

Screenshots of each state go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import api.app
from api import create_app
from devstack.proc import free_port
from tests.support import media_clips
from tests.support.api import AUTH, api_settings, assert_error
from tests.support.browser import chromium_page, playwright_api
from tests.support.media_checks import ffprobe_json
from tests.support.paths import ARTIFACTS
from tests.support.services import service_missing
from tests.support.waiting import eventually
from tests.support.workers import spool_worker

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "screenshots"


@contextlib.asynccontextmanager
async def served(app, port: int):
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
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
    # 480 lines: two renditions (480p, 360p) for the quality menu; 6 s: a few storyboard tiles.
    return media_clips.make_clip(
        tmp_path_factory.mktemp("browser") / "talk.mp4", width=854, height=480, seconds=6
    )


async def test_upload_watch_and_caption_in_the_browser(
    client, settings, browser_clip, monkeypatch, tmp_path
):
    """Upload, "Processing…" with per-step bars, ready; then the real processed video plays
    its HLS master playlist through the API: time advances, each quality of the menu becomes
    the picture's height, the Captions button shows Whisper's cues, and hovering the scrub bar
    shows the storyboard tile of that time. Reads are private: the player, the captions track
    and the storyboard get the media through the read grant of the video's status, and go on
    playing past its expiry."""
    async_playwright, expect = playwright_api()
    hls_js_missing()
    SHOTS.mkdir(parents=True, exist_ok=True)
    s = api_settings(settings, api_expose_key_to_localhost=True, public_reads=False)
    app = create_app(s, client=client)
    errors: list[str] = []
    async with (
        served(app, free_port()) as base,
        async_playwright() as pw,
        chromium_page(pw, errors) as page,
    ):
        await page.goto(base + "/")
        await expect(page.locator("#keystate")).to_have_text("API key set")
        await page.set_input_files("#file", str(browser_clip))
        await page.click("#upload-btn")
        # Acknowledged, and no worker yet: the job page says Processing….
        await expect(page.locator("#job-state")).to_have_text("Processing…", timeout=10_000)
        assert await page.eval_on_selector("#upload-progress", "p => p.value") == 100
        await page.screenshot(path=str(SHOTS / "1-processing.png"), full_page=True)
        async with spool_worker(client, s):
            await expect(page.locator("#job-state")).to_have_text("Ready", timeout=180_000)
            await expect(page.locator("#player-box")).to_be_visible()
            await page.screenshot(path=str(SHOTS / "2-ready.png"), full_page=True)
            button = page.locator("#captions-btn")
            await expect(button).to_be_enabled(timeout=120_000)
        # One bar per rendition, full once done.
        bars = await page.eval_on_selector_all(
            "#steps .step",
            "rows => Object.fromEntries("
            "rows.map(r => [r.children[0].textContent,"
            " r.children[1].value]))",
        )
        assert bars.get("rendition-480p") == 100 and bars.get("rendition-360p") == 100, bars
        video_id = await page.text_content("#job-id")
        assert page.url.endswith(f"#video={video_id}")

        await expect_quality_menu(page, ["480p", "360p"])
        await page.evaluate(f"{PLAYER}.muted = true; {PLAYER}.loop = true; {PLAYER}.play()")
        await until(page, f"{PLAYER}.currentTime > 1", within=30)
        await check_quality_switches(page, [480, 360])
        await page.screenshot(path=str(SHOTS / "3-hls-360p.png"), full_page=True)

        cues = await show_captions(page)
        assert set(media_clips.normalized_words(cues)) & {"hello", "world", "test", "simple"}
        await page.evaluate(f"{PLAYER}.pause(); {PLAYER}.currentTime = 1.0")
        await page.screenshot(path=str(SHOTS / "4-captions-on.png"), full_page=True)

        async with httpx.AsyncClient(base_url=base, headers=AUTH) as http:
            status = (await http.get(f"/v1/videos/{video_id}")).json()
            assert_error(
                await http.get(
                    f"/v1/videos/{video_id}/storyboard.vtt", headers={"Authorization": ""}
                ),
                401,
            )
        media_base = status["storyboard_url"].removesuffix("/storyboard.vtt")
        assert media_base.startswith(f"/v1/videos/{video_id}/grant/"), status
        async with httpx.AsyncClient(base_url=base) as http:  # no key: the grant opens it
            track = await http.get(status["storyboard_url"])
        assert track.status_code == 200, track.text
        for fraction in (0.2, 0.9):
            await check_storyboard_hover(page, track.text, fraction, media_base)
        await page.screenshot(path=str(SHOTS / "5-storyboard.png"), full_page=True)
        await expect(page.locator("#jobs tbody tr").first).to_contain_text("Ready")

        # Its grant expires (the API's clock moved on two lifetimes, as past a night's
        # sleep): the next segments are refused, the page reads the status again and plays
        # on under a new grant.
        lifetime = s.media_grant_seconds + 3600
        app.state.services.clock = lambda: time.time() + 2 * lifetime
        async with httpx.AsyncClient(base_url=base) as http:
            assert_error(await http.get(status["storyboard_url"]), 401)
        # Nothing from the browser's cache: every segment is asked for again.
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Network.clearBrowserCache")
        await page.evaluate(f"{PLAYER}.play()")
        await check_quality_switches(page, [360, 480])
        renewed = await page.evaluate("grantBase")
        assert renewed.startswith(f"/v1/videos/{video_id}/grant/"), renewed
        assert not renewed.startswith(media_base), renewed

        # The same without hls.js or a native HLS player: the progressive MP4s, and a
        # rendition picked after the next expiry plays, under the grant read again.
        monkeypatch.setattr(api.app, "HLS_JS", (tmp_path / "no-hls.min.js",))
        await page.add_init_script(NO_NATIVE_HLS)
        await page.reload()
        await expect(page.locator("#rendition-label")).to_have_text("Rendition", timeout=20_000)
        await until(page, f"{PLAYER}.readyState >= 1", within=20)
        app.state.services.clock = lambda: time.time() + 4 * lifetime
        options = await page.eval_on_selector_all("#rendition option", "os => os.map(o => o.value)")
        await page.select_option("#rendition", options[-1])
        await until(page, f"{PLAYER}.videoHeight === 360 && {PLAYER}.readyState >= 1", within=30)
        assert not (await page.evaluate("grantBase")).startswith(renewed)
        assert errors == [], errors


# --- HLS, the quality menu and the storyboard ---------------------------------------------------

FIXTURE_ID = "hlsfixture"
OLD_ID = "madebeforehls"  # the same files, as a video made before HLS (no hls_url)
LIVE_ID = "stillprocessing"  # the same files, as a job still running with a live playlist
LIVE = {"ready": False}  # flipped by the test: the live job's status says ready from then on
FIXTURE_SECONDS = 12
SEGMENT_SECONDS = 2
LEVELS = {"360p": (640, 360, 900), "240p": (426, 240, 400)}  # name: width, height, kb/s
STORYBOARD_EVERY = 1.0
TILE_W, TILE_H, COLUMNS, ROWS = 160, 90, 4, 2
FIXTURE_CAPTIONS = (
    "WEBVTT\n\n1\n00:00:00.000 --> 00:00:03.000\nHello world, this is a simple test.\n"
)


def _ffmpeg(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=cwd,
    )


def _hls(out: Path, *args: str) -> None:
    """One fMP4 HLS media playlist in ``out``, named as the API serves them."""
    out.mkdir(parents=True)
    _ffmpeg(
        *args,
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-start_number",
        "1",
        "-hls_segment_filename",
        "seg-%05d.m4s",
        "index.m3u8",
        cwd=out,
    )


def _avc1(playlist_dir: Path) -> str:
    """The RFC 6381 codec string of a variant, from its stream's profile and level."""
    stream = ffprobe_json(
        "index.m3u8",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=profile,level",
        cwd=playlist_dir,
    )["streams"][0]
    profile = {"Constrained Baseline": "42e0", "Baseline": "4200", "Main": "4d00", "High": "6400"}[
        stream["profile"]
    ]
    return f"avc1.{profile}{stream['level']:02x}"


def _storyboard_vtt(duration: float) -> str:
    """The thumbnails track: cue i covers [i, i+1) * every, its tile in sheet i // (C * R)."""

    def stamp(t: float) -> str:
        return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"

    lines = ["WEBVTT", ""]
    per_sheet = COLUMNS * ROWS
    for i in range(math.ceil(duration / STORYBOARD_EVERY)):
        start, end = i * STORYBOARD_EVERY, min(duration, (i + 1) * STORYBOARD_EVERY)
        x, y = i % per_sheet % COLUMNS * TILE_W, i % per_sheet // COLUMNS * TILE_H
        lines += [
            f"{stamp(start)} --> {stamp(end)}",
            f"storyboard/{i // per_sheet}.jpg#xywh={x},{y},{TILE_W},{TILE_H}",
            "",
        ]
    return "\n".join(lines)


def hls_status(base: str, video_id: str = FIXTURE_ID) -> dict:
    """The status JSON of the fixture video, shaped as GET /v1/videos/{id} answers it."""
    status = {
        "video_id": video_id,
        "state": "ready",
        "error": None,
        "errors": {},
        "steps": [
            {"name": name, "state": "done", "percent": 100}
            for name in ("probe", "encode", "package", "storyboard")
        ],
        "renditions": [
            {"name": name, "width": w, "height": h, "url": f"{base}/progressive/{name}.mp4"}
            for name, (w, h, _) in LEVELS.items()
        ],
        "poster_url": None,
        "hls_url": f"{base}/hls/master.m3u8",
        "storyboard_url": f"{base}/storyboard.vtt",
        "captions": {
            "state": "available",
            "language": "en",
            "vtt_url": f"{base}/captions.vtt",
            "srt_url": None,
        },
    }
    if video_id == OLD_ID:
        status.update(hls_url=None, storyboard_url=None)
    if video_id == LIVE_ID and not LIVE["ready"]:
        status.update(
            state="processing",
            renditions=[],
            hls_url=None,
            storyboard_url=None,
            playable_url=f"{base}/hls/live/master.m3u8",
            playable_at="2026-12-07T10:00:00+00:00",
        )
    elif video_id != OLD_ID:
        status["playable_url"] = status["hls_url"]
    return status


@pytest.fixture(scope="module")
def hls_fixture(tmp_path_factory) -> Path:
    """A processed video's files: HLS (two video levels, audio, master), the progressive MP4s,
    storyboard sprites and track, captions; the directory is served at /v1/videos/{id}/."""
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    root = tmp_path_factory.mktemp("hls")
    src = media_clips.make_clip(
        root / "source.mp4", width=640, height=360, seconds=FIXTURE_SECONDS, fps=24
    )
    out = root / "served"
    master = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"',
    ]
    _hls(
        out / "hls" / "audio",
        "-i",
        str(src),
        "-map",
        "0:a",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-ac",
        "2",
    )
    (out / "progressive").mkdir()
    for name, (w, h, kbps) in LEVELS.items():
        encode = [
            "-vf",
            f"scale={w}:{h},setsar=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            f"{kbps}k",
            "-maxrate",
            f"{kbps * 3 // 2}k",
            "-bufsize",
            f"{kbps * 2}k",
            "-sc_threshold",
            "0",
            "-force_key_frames",
            f"expr:gte(t,n_forced*{SEGMENT_SECONDS})",
        ]
        _hls(out / "hls" / name, "-i", str(src), "-map", "0:v", *encode)
        _ffmpeg(
            "-i",
            str(src),
            *encode,
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            str(out / "progressive" / f"{name}.mp4"),
        )
        bandwidth = (kbps * 3 // 2 + 64) * 1000
        master += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},AVERAGE-BANDWIDTH="
            f"{(kbps + 64) * 1000},RESOLUTION={w}x{h},"
            f'CODECS="{_avc1(out / "hls" / name)},mp4a.40.2",FRAME-RATE=24.000,'
            'AUDIO="audio"',
            f"{name}/index.m3u8",
        ]
    (out / "hls" / "master.m3u8").write_text("\n".join(master) + "\n")
    _live_playlists(out / "hls", master)
    (out / "storyboard").mkdir()
    _ffmpeg(
        "-i",
        str(src),
        "-vf",
        f"fps=1/{STORYBOARD_EVERY},scale={TILE_W}:{TILE_H},tile={COLUMNS}x{ROWS}",
        "-start_number",
        "0",
        str(out / "storyboard" / "%d.jpg"),
    )
    (out / "storyboard.vtt").write_text(_storyboard_vtt(FIXTURE_SECONDS))
    (out / "captions.vtt").write_text(FIXTURE_CAPTIONS)
    return out


def _live_playlists(hls: Path, master: list[str]) -> None:
    """A job still running, as the pipeline publishes it (spool/media/live.py): the 240p
    variant and the audio as EVENT playlists holding their first half, not ended, under
    ``live/``, and a master naming them."""
    for folder in ("240p", "audio"):
        lines = (hls / folder / "index.m3u8").read_text().splitlines()
        kept, seconds = [], 0.0
        for line in lines:
            if line.startswith(("#EXT-X-ENDLIST", "#EXT-X-PLAYLIST-TYPE")):
                continue
            if line.startswith("#EXTINF:"):
                if seconds >= FIXTURE_SECONDS / 2:
                    break
                seconds += float(line.removeprefix("#EXTINF:").split(",")[0])
            elif line.startswith('#EXT-X-MAP:URI="'):
                line = line.replace('URI="', f'URI="../../{folder}/')
            elif line and not line.startswith("#"):
                line = f"../../{folder}/{line}"
            kept.append(line)
        kept.insert(1, "#EXT-X-PLAYLIST-TYPE:EVENT")
        (hls / "live" / folder).mkdir(parents=True)
        (hls / "live" / folder / "index.m3u8").write_text("\n".join(kept) + "\n")
    one_variant = [line for line in master if "360p/" not in line and "x360," not in line]
    (hls / "live" / "master.m3u8").write_text("\n".join(one_variant) + "\n")


def serve_fixture(app, files: Path) -> None:
    """Answer /v1/videos/{FIXTURE_ID} (and OLD_ID) and their files from ``files``, ahead of
    the API's routes; everything else (the page, hls.js, /v1/config, the list) is the real
    app."""
    for video_id in (FIXTURE_ID, OLD_ID, LIVE_ID):
        base = f"/v1/videos/{video_id}"

        async def status(_request, base=base, video_id=video_id) -> JSONResponse:
            return JSONResponse(hls_status(base, video_id))

        app.router.routes[:0] = [Route(base, status), Mount(base, StaticFiles(directory=files))]


async def until(page, expression: str, within: float = 30) -> None:
    """Wait until ``expression`` is true in the page. Not ``page.wait_for_function``: it
    evaluates the expression with eval, which the page's Content-Security-Policy refuses."""
    await eventually(
        lambda: page.evaluate(expression), f"the page to reach {expression}", within=within
    )


def hls_js_missing() -> None:
    """The page's hls.js comes from `make install` (npm ci of package-lock.json)."""
    if not any(path.is_file() for path in api.app.HLS_JS):
        service_missing("hls.js is not installed: run `make install` (npm ci)")


PLAYER = "document.getElementById('player')"


def expected_tile(vtt: str, t: float) -> tuple[str, list[int]]:
    """(sprite path, [x, y, w, h]) of the cue covering time t, read from the track itself."""
    cues = re.findall(r"([\d:.]+) --> ([\d:.]+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)", vtt)

    def seconds(stamp: str) -> float:
        return sum(float(part) * 60**i for i, part in enumerate(reversed(stamp.split(":"))))

    for start, end, path, *xywh in cues:
        if seconds(start) <= t < seconds(end):
            return path, [int(v) for v in xywh]
    raise AssertionError(f"no storyboard cue at {t}")


async def check_quality_switches(page, heights: list[int]) -> None:
    """Each level of the quality menu, chosen, becomes the picture's height."""
    for height in heights:
        value = await page.eval_on_selector(
            "#rendition", f"s => [...s.options].find(o => o.text.startsWith('{height}p')).value"
        )
        await page.select_option("#rendition", value)
        await until(page, f"{PLAYER}.videoHeight === {height}", within=60)
        # ... and playback goes on at that level (loop: the time may wrap to 0).
        await page.evaluate(f"window.switchedAt = {PLAYER}.currentTime")
        await until(
            page,
            f"Math.abs({PLAYER}.currentTime - window.switchedAt) > 0.5"
            f" && {PLAYER}.videoHeight === {height}",
            within=30,
        )


async def expect_quality_menu(page, names: list[str]) -> None:
    """hls.js read the master playlist: Auto, then every level, highest first, and it plays
    through Media Source Extensions (a blob: source), not a progressive MP4."""
    await until(
        page,
        f"document.querySelectorAll('#rendition option').length === {len(names) + 1}",
        within=20,
    )
    texts = await page.eval_on_selector_all("#rendition option", "os => os.map(o => o.text)")
    assert texts[0].startswith("Auto"), texts
    assert [t.split(" ")[0] for t in texts[1:]] == names, texts
    assert await page.text_content("#rendition-label") == "Quality"
    assert await page.evaluate(f"{PLAYER}.src.startsWith('blob:')")


async def show_captions(page) -> str:
    """Press Captions; the text of the cues the track then shows."""
    await page.click("#captions-btn")
    await until(
        page,
        "(() => { const t = document.querySelector('#player track').track;"
        " return t.mode === 'showing' && t.cues && t.cues.length > 0; })()",
        within=20,
    )
    return await page.evaluate(
        "[...document.querySelector('#player track').track.cues].map(c => c.text).join(' ')"
    )


async def check_storyboard_hover(page, vtt: str, fraction: float, media_base: str) -> None:
    """Hovering the scrub bar at ``fraction`` of its width shows that time's tile, a sprite
    under ``media_base`` (the path the video's media URLs start with)."""
    box = await page.locator("#scrub").bounding_box()
    await page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    preview = page.locator("#storyboard-preview")
    await preview.wait_for(state="visible", timeout=10_000)
    shown = await page.eval_on_selector(
        "#storyboard-preview",
        """p => {
        const tile = p.querySelector('.tile');
        return {time: parseFloat(p.dataset.time), image: tile.style.backgroundImage,
                position: tile.style.backgroundPosition, width: tile.style.width,
                height: tile.style.height, duration: document.getElementById('player').duration};
    }""",
    )
    assert shown["time"] == pytest.approx(fraction * shown["duration"], abs=0.05)
    sprite, (x, y, w, h) = expected_tile(vtt, shown["time"])
    assert shown["image"].endswith(f'{media_base}/{sprite}")'), shown
    offset = [-float(v.removesuffix("px")) for v in shown["position"].split()]
    assert offset == [x, y], shown
    assert (shown["width"], shown["height"]) == (f"{w}px", f"{h}px"), shown
    sprite_url = shown["image"][len('url("') : -2]
    loaded = await page.evaluate(
        f"fetch({json.dumps(sprite_url)}).then(r => r.ok &&"
        " r.headers.get('content-type').startsWith('image/'))"
    )
    assert loaded, sprite_url


@contextlib.asynccontextmanager
async def fixture_page(client, settings, files: Path):
    """A Chromium page on the API serving the fixture videos from ``files``: (the page, the
    base URL, playwright's ``expect``, the page's errors)."""
    async_playwright, expect = playwright_api()
    hls_js_missing()
    app = create_app(api_settings(settings, api_expose_key_to_localhost=True), client=client)
    serve_fixture(app, files)
    errors: list[str] = []
    async with (
        served(app, free_port()) as base,
        async_playwright() as pw,
        chromium_page(pw, errors) as page,
    ):
        yield page, base, expect, errors


async def test_page_plays_hls_with_quality_menu_captions_and_storyboard(
    client, settings, hls_fixture
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with fixture_page(client, settings, hls_fixture) as (page, base, expect, errors):
        await page.goto(f"{base}/#video={FIXTURE_ID}")
        await expect(page.locator("#player-box")).to_be_visible(timeout=20_000)
        await expect_quality_menu(page, ["360p", "240p"])
        await page.evaluate(f"{PLAYER}.muted = true; {PLAYER}.loop = true; {PLAYER}.play()")
        await until(page, f"{PLAYER}.currentTime > 1", within=30)
        await check_quality_switches(page, [360, 240])
        await page.screenshot(path=str(SHOTS / "5-hls-240p.png"), full_page=True)

        assert "Hello world" in await show_captions(page)

        await page.evaluate(f"{PLAYER}.pause()")
        vtt = (hls_fixture / "storyboard.vtt").read_text()
        for fraction in (0.1, 0.77):  # a tile of the first sheet, then of the second
            await check_storyboard_hover(page, vtt, fraction, f"/v1/videos/{FIXTURE_ID}")
        await page.screenshot(path=str(SHOTS / "6-hls-storyboard.png"), full_page=True)

        # A video made before HLS (no hls_url, no storyboard) plays its MP4s as before.
        await page.goto(f"{base}/#video={OLD_ID}")
        await expect(page.locator("#rendition-label")).to_have_text("Rendition", timeout=20_000)
        options = await page.eval_on_selector_all("#rendition option", "os => os.map(o => o.value)")
        assert [o.rsplit("/", 1)[-1] for o in options] == ["360p.mp4", "240p.mp4"]
        await page.select_option("#rendition", options[1])
        await until(page, f"{PLAYER}.src.endsWith('/progressive/240p.mp4')")
        await until(page, f"{PLAYER}.videoHeight === 240", within=20)
        await page.hover("#scrub")
        assert await page.is_hidden("#storyboard-preview")
        assert errors == [], errors


async def test_page_plays_a_job_still_processing_then_moves_to_the_full_ladder(
    client, settings, hls_fixture
):
    """A job still running with a live playlist: the page plays it from its start while it
    says it is processing; once the status says ready, the player moves to the full ladder's
    quality menu where the viewer was."""
    LIVE["ready"] = False
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with fixture_page(client, settings, hls_fixture) as (page, base, expect, errors):
        await page.goto(f"{base}/#video={LIVE_ID}")
        await expect(page.locator("#player-box")).to_be_visible(timeout=20_000)
        await expect(page.locator("#job-state")).to_have_text("Processing…")
        await expect(page.locator("#stream-note")).to_contain_text("Still processing")
        await expect_quality_menu(page, ["240p"])
        await page.evaluate(f"{PLAYER}.muted = true; {PLAYER}.play()")
        await until(page, f"{PLAYER}.currentTime > 1", within=30)
        # Played from the start of what is published, not from its live edge.
        assert await page.evaluate(f"{PLAYER}.currentTime") < FIXTURE_SECONDS / 2
        await page.evaluate(f"{PLAYER}.pause()")
        at = await page.evaluate(f"{PLAYER}.currentTime")
        await page.screenshot(path=str(SHOTS / "7-still-processing.png"), full_page=True)

        LIVE["ready"] = True
        await expect_quality_menu(page, ["360p", "240p"])
        await expect(page.locator("#job-state")).to_have_text("Ready")
        await until(page, f"Math.abs({PLAYER}.currentTime - {at}) < 0.5", within=20)
        assert await page.evaluate(f"{PLAYER}.paused")
        assert errors == [], errors


# A browser without native HLS (Firefox; Chromium before its own HLS player).
NO_NATIVE_HLS = """(() => {
  const canPlayType = HTMLMediaElement.prototype.canPlayType;
  HTMLMediaElement.prototype.canPlayType = function (type) {
    return /mpegurl/i.test(type) ? "" : canPlayType.call(this, type);
  };
})();"""


async def test_page_without_hls_js_still_plays_and_says_what_to_install(
    client, settings, hls_fixture, monkeypatch, tmp_path
):
    async_playwright, expect = playwright_api()
    monkeypatch.setattr(api.app, "HLS_JS", (tmp_path / "node_modules/hls.js/dist/hls.min.js",))
    app = create_app(api_settings(settings, api_expose_key_to_localhost=True), client=client)
    serve_fixture(app, hls_fixture)
    errors: list[str] = []
    async with (
        served(app, free_port()) as base,
        async_playwright() as pw,
        chromium_page(pw, errors) as page,
    ):
        async with httpx.AsyncClient(base_url=base) as http:
            missing = await http.get("/vendor/hls.min.js")
        assert missing.status_code == 404 and "make install" in missing.json()["error"]["message"]
        # A browser with its own HLS player (this Chromium, Safari) plays the master playlist
        # and picks the quality itself; one without plays the progressive MP4s.
        await page.goto(f"{base}/#video={FIXTURE_ID}")
        await expect(page.locator("#stream-note")).to_contain_text("make install", timeout=20_000)
        if await page.evaluate(f"{PLAYER}.canPlayType('application/vnd.apple.mpegurl')"):
            await until(page, f"{PLAYER}.src.endsWith('/hls/master.m3u8')")
            texts = await page.eval_on_selector_all(
                "#rendition option", "os => os.map(o => o.text)"
            )
            assert texts == ["Auto"], texts
            await page.evaluate(f"{PLAYER}.muted = true; {PLAYER}.play()")
            await until(page, f"{PLAYER}.currentTime > 0.5", within=30)
        await page.screenshot(path=str(SHOTS / "7-no-hls-js-native.png"), full_page=True)

        await page.add_init_script(NO_NATIVE_HLS)
        await page.goto(f"{base}/?again#video={FIXTURE_ID}")
        await expect(page.locator("#stream-note")).to_contain_text(
            "one rendition at a time", timeout=20_000
        )
        await expect(page.locator("#stream-note")).to_contain_text("make install")
        await expect(page.locator("#rendition-label")).to_have_text("Rendition")
        await until(page, f"{PLAYER}.src.endsWith('/progressive/360p.mp4')")
        await until(page, f"{PLAYER}.readyState >= 1", within=20)
        await page.screenshot(path=str(SHOTS / "8-no-hls-js-progressive.png"), full_page=True)
        assert errors == [], errors


async def submit_until(page, expect, button: str, shown, text: str, within: float = 60) -> None:
    """Press ``button`` until ``shown`` has ``text``: what a post's workflow writes (index,
    count) lands soon after the publish is acknowledged, not with it."""
    try:
        async with asyncio.timeout(within):
            while True:
                await page.click(button)
                with contextlib.suppress(AssertionError):
                    await expect(shown).to_have_text(text, timeout=500)
                    return
    except TimeoutError:
        last = await shown.text_content(timeout=1000) if await shown.count() else None
        raise AssertionError(f"{text!r} not shown within {within} s; shown: {last!r}") from None


async def test_blog_panel_publishes_searches_and_counts(client, settings):
    async_playwright, expect = playwright_api()
    SHOTS.mkdir(parents=True, exist_ok=True)
    s = api_settings(settings, api_expose_key_to_localhost=True)
    app = create_app(s, client=client)
    errors: list[str] = []
    async with (
        served(app, free_port()) as base,
        async_playwright() as pw,
        chromium_page(pw, errors) as page,
        spool_worker(client, s),
    ):
        await page.goto(base + "/")
        await expect(page.locator("#keystate")).to_have_text("API key set")
        await page.fill("#post-id", "browser-post")
        await page.fill("#post-author", "grace")
        await page.fill("#post-title", "Storyboards in the browser")
        await page.fill("#post-body", "Hovering the scrub bar shows a sprite tile.")
        await page.click("#post-form button[type=submit]")
        await expect(page.locator("#post-msg")).to_contain_text("Publishing (job ", timeout=10_000)
        await page.fill("#search-q", "sprite")
        await submit_until(
            page,
            expect,
            "#search-form button[type=submit]",
            page.locator("#search-results li").first,
            "Storyboards in the browser — grace",
        )
        await page.fill("#author-id", "grace")
        await submit_until(
            page,
            expect,
            "#author-form button[type=submit]",
            page.locator("#author-msg"),
            "grace has published 1 post(s).",
        )
        await page.screenshot(path=str(SHOTS / "9-blog.png"), full_page=True)
        assert errors == [], errors


async def test_blog_panel_schedules_unpublishes_and_deletes(client, settings):
    """A post published later shows its time; a published one is unpublished, then deleted,
    with the buttons of the author's list."""
    async_playwright, expect = playwright_api()
    SHOTS.mkdir(parents=True, exist_ok=True)
    s = api_settings(settings, api_expose_key_to_localhost=True)
    app = create_app(s, client=client)
    errors: list[str] = []
    async with (
        served(app, free_port()) as base,
        async_playwright() as pw,
        chromium_page(pw, errors) as page,
        spool_worker(client, s),
    ):
        await page.goto(base + "/")
        await expect(page.locator("#keystate")).to_have_text("API key set")
        # A month ahead, as the page's datetime-local input takes it.
        month = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
        for post_id, at in (("later-post", month), ("now-post", "")):
            await page.fill("#post-id", post_id)
            await page.fill("#post-author", "hedy")
            await page.fill("#post-title", f"Title of {post_id}")
            await page.fill("#post-body", "A body.")
            await page.fill("#post-at", at)
            await page.click("#post-form button[type=submit]")
        await page.fill("#author-id", "hedy")
        await submit_until(
            page,
            expect,
            "#author-form button[type=submit]",
            page.locator("#author-msg"),
            "hedy has published 1 post(s).",
        )
        later = page.locator("#author-posts tr[data-post='later-post'] td")
        await expect(later.nth(1)).to_have_text("scheduled", timeout=10_000)
        await expect(later.nth(2)).not_to_be_empty()
        now = page.locator("#author-posts tr[data-post='now-post']")
        await now.get_by_role("button", name="Unpublish").click()
        await submit_until(
            page,
            expect,
            "#author-form button[type=submit]",
            page.locator("#author-posts tr[data-post='now-post'] td").nth(1),
            "unpublished",
        )
        await now.get_by_role("button", name="Delete").click()
        await submit_until(
            page,
            expect,
            "#author-form button[type=submit]",
            page.locator("#author-msg"),
            "hedy has published 0 post(s).",
        )
        await expect(now).to_have_count(0)
        await page.screenshot(path=str(SHOTS / "10-blog-life.png"), full_page=True)
        assert errors == [], errors
