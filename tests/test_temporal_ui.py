"""Runs an operator can read in the Temporal Web UI (docs/observability.md, the Temporal UI):
a dev server with its UI, a real worker, a video and a post, and headless Chromium (Debian's)
reading what an operator reads. The video is found in the workflow list by its summary
(``SpoolSummary``); its timeline and event history name each chunk and rendition; its User
Metadata tab shows the start's summary and details and the live table of steps. A run started
without a summary (as by ``temporal workflow start``) still shows its current details, and a
refused post's failure names the post and the field.

Screenshots go to artifacts/screenshots/temporal-ui/.
"""

from __future__ import annotations

import re
import uuid

import pytest
from temporalio.client import WorkflowFailureError

from spool.config import Settings
from spool.ingest import ingest_video
from spool.models import BlogPublishInput, JobState, Post, VideoStatus, run_text
from spool.schedules import ensure_schedules, sweep_schedule_id
from spool.service import jobs
from spool.temporal import connect
from tests.support import media_clips
from tests.support.browser import chromium_page, playwright_api
from tests.support.paths import ARTIFACTS
from tests.support.services import service_missing
from tests.support.temporal_ui import (
    dev_server_with_ui,
    list_url,
    metadata_frame,
    open_tab,
    show_summary_column,
    ui_answers,
    workflow_url,
)
from tests.support.waiting import eventually
from tests.support.workers import spool_worker

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "screenshots" / "temporal-ui"
# Deadlines only, never waits: the UI's own requests on a busy 2-core machine can be slow.
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def ui_server():
    with dev_server_with_ui(ARTIFACTS / "logs" / "temporal-ui-dev-server.log") as server:
        yield server


def ui_settings(server, tmp_path) -> Settings:
    """One queue for every kind of work; 2 s chunks, so a 6 s clip makes three."""
    queue = f"ui-{uuid.uuid4().hex[:10]}"
    return Settings(
        temporal_address=server.address,
        data_dir=tmp_path / "data",
        queue_pipeline=queue,
        queue_media=queue,
        queue_captions=queue,
        chunk_seconds=2.0,
        hls_segment_seconds=2.0,
    )


async def test_an_operator_reads_a_video_and_a_post_in_the_temporal_ui(ui_server, tmp_path):
    async_playwright, expect = playwright_api()
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    base = ui_server.ui_url
    await eventually(lambda: ui_answers(base), "the Temporal Web UI answers", within=60)
    s = ui_settings(ui_server, tmp_path)
    client = await connect(s, wait_seconds=30)
    clip = media_clips.make_clip(tmp_path / "talk-ui.mp4", width=854, height=480, seconds=6)
    inp = ingest_video(s, clip, owner_id="ana", captions=False)
    size = clip.stat().st_size
    tag = uuid.uuid4().hex[:8]
    post = Post(post_id=f"ui{tag}", author_id="ana", title="Hello from the UI", body="Hi.")
    bare = Post(post_id=f"bare{tag}", author_id="bo", title="Started bare", body="Hi.")
    refused = Post(post_id=f"bad{tag}", author_id="bo", title="Empty", body="   ")
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    # The worker stays up while the browser reads: a run's current details are the answer of
    # a query, which a closed run answers only by a worker replaying it.
    async with spool_worker(client, s):
        video = await jobs.start_video(client, s, inp, file_name=clip.name, size_bytes=size)
        posted = await jobs.start_blog(client, s, post)
        # As `temporal workflow start` does: no summary, no details, no search attributes.
        for p in (bare, refused):
            await client.start_workflow(
                "BlogPublishWorkflow",
                BlogPublishInput(post=p),
                id=f"post-{p.post_id}-v1",
                task_queue=s.queue_pipeline,
            )
        status = await client.get_workflow_handle(video.job_id, result_type=VideoStatus).result()
        assert status.state == JobState.READY, status.error
        await client.get_workflow_handle(posted.job_id).result()
        await client.get_workflow_handle(f"post-{bare.post_id}-v1").result()
        with pytest.raises(WorkflowFailureError):
            await client.get_workflow_handle(f"post-{refused.post_id}-v1").result()
        await ensure_schedules(client, s)
        expect.set_options(timeout=WAIT_MS)  # the process's default: put back below
        try:
            async with async_playwright() as pw, chromium_page(pw, errors) as page:
                page.set_default_timeout(WAIT_MS)
                summary = run_text.video_summary(inp, clip.name, size)
                await read_video(page, expect, base, video.job_id, summary)
                await read_post(page, expect, base, posted.job_id, run_text.post_summary(post))
                await read_bare_post(page, expect, base, f"post-{bare.post_id}-v1")
                await read_refusal(page, expect, base, f"post-{refused.post_id}-v1")
                await read_schedule(page, expect, base, sweep_schedule_id(s))
        finally:
            expect.set_options(timeout=None)


async def read_video(page, expect, base: str, job_id: str, summary: str) -> None:
    """Found in the list by its summary; each chunk and rendition named in the timeline and
    the event history; summary, details and the live steps table in User Metadata."""
    await page.goto(list_url(base, 'SpoolSummary STARTS_WITH "talk-ui.mp4"'))
    await show_summary_column(page)
    row = page.locator("tr", has_text=summary)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(job_id)
    await page.screenshot(path=str(SHOTS / "1-list-by-summary.png"), full_page=True)
    await row.locator("a", has_text=job_id).first.click()
    main = page.locator("body")
    # The timeline draws only the rows inside the window: one tall enough for every row (a
    # job that plays early has some twenty), so the first chunk's row is drawn too.
    await page.set_viewport_size({"width": 1100, "height": 2600})
    await expect(main).to_contain_text("notify owner ana: ready")
    for text in (
        "encode chunk 0/3 · 0.0–2.0 s · 480p 360p",
        "encode chunk 2/3 · 4.0–6.0 s · 480p 360p",
        "package 480p · 3 chunks + audio",
        "package 360p · 3 chunks + audio",
        "master playlist · 480p 360p",
    ):
        await expect(main).to_contain_text(text)
    await page.screenshot(path=str(SHOTS / "2-video-timeline.png"), full_page=True)
    await page.click("[data-testid=history-tab]")
    await expect(main).to_contain_text("encode chunk 1/3 · 2.0–4.0 s · 480p 360p")
    await page.screenshot(path=str(SHOTS / "3-video-event-history.png"), full_page=True)
    await open_tab(page, "User Metadata")
    await expect(metadata_frame(page, "summary")).to_contain_text(summary)
    await expect(metadata_frame(page, "details")).to_contain_text("file: talk-ui.mp4")
    current = metadata_frame(page, "current")
    for text in ("state: ready", "source: 6.0 s · 854x480", "rendition-480p", "package"):
        await expect(current).to_contain_text(text)
    await page.screenshot(path=str(SHOTS / "4-video-user-metadata.png"), full_page=True)


async def read_post(page, expect, base: str, job_id: str, summary: str) -> None:
    # Every post's run, each with its summary in the column put beside the ids before.
    await page.goto(list_url(base, 'SpoolKind = "blog"'))
    row = page.locator("tr", has_text=summary)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(job_id)
    await page.screenshot(path=str(SHOTS / "5-posts-list.png"), full_page=True)
    await row.locator("a", has_text=job_id).first.click()
    await expect(page.locator("body")).to_contain_text("index_post · post ")
    await open_tab(page, "User Metadata")
    await expect(metadata_frame(page, "summary")).to_contain_text(summary)
    await expect(metadata_frame(page, "details")).to_contain_text("operation: publish")
    await expect(metadata_frame(page, "current")).to_contain_text("notify_followers")
    await page.screenshot(path=str(SHOTS / "6-post-user-metadata.png"), full_page=True)


async def read_bare_post(page, expect, base: str, job_id: str) -> None:
    """Started without a summary: the workflow's own current details say what it is."""
    await page.goto(workflow_url(base, job_id))
    await open_tab(page, "User Metadata")
    current = metadata_frame(page, "current")
    for text in (f"Post job {job_id}", "title: Started bare", "author: bo", "index_post"):
        await expect(current).to_contain_text(text)
    await page.screenshot(path=str(SHOTS / "7-bare-post-current-details.png"), full_page=True)


async def read_refusal(page, expect, base: str, job_id: str) -> None:
    """The failure the UI shows is enough to act on: which post, which field, why."""
    await page.goto(workflow_url(base, job_id))
    post_id = job_id.removeprefix("post-").removesuffix("-v1")
    await expect(page.locator("body")).to_contain_text("failed", ignore_case=True)
    await expect(page.locator("body")).to_contain_text(
        f"invalid post {post_id} v1, refused before any step: body: must not be empty"
    )
    await page.screenshot(path=str(SHOTS / "8-refused-post.png"), full_page=True)


async def read_schedule(page, expect, base: str, schedule_id: str) -> None:
    await page.goto(f"{base}/namespaces/default/schedules")
    await page.get_by_text(schedule_id).first.click()
    body = page.locator("body")
    await expect(body).to_contain_text("SweepAbandonedWritesWorkflow")
    # Why these two: docs/observability.md, the Schedules tab.
    await expect(body).to_contain_text(re.compile(r"Overlap Policy\s*Skip"))
    await expect(body).to_contain_text(re.compile(r"Catchup Window Policy\s*1 hour"))
    await page.screenshot(path=str(SHOTS / "9-sweep-schedule.png"), full_page=True)
