"""Record completed workflow histories into tests/histories/ for the replay tests.

    .venv/bin/python -m tests.support.record_histories          # blog
    .venv/bin/python -m tests.support.record_histories video    # several chunks: ready, cancelled
    .venv/bin/python -m tests.support.record_histories post     # a post's own workflow
    .venv/bin/python -m tests.support.record_histories playable # live playlists, in waves
    .venv/bin/python -m tests.support.record_histories playable-sound # Opus: AAC in parts

The other video and captions runs are saved by tests/test_video_pipeline.py
(SPOOL_SAVE_HISTORIES=1). Run it to add a new scenario, or for a change made behind a patch
(docs/versioning.md); never to make a failing replay test pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

from temporalio.client import WorkflowFailureError

from activities.blog import BlogActivities
from devstack.proc import free_port
from devstack.temporal import DevServer
from spool.config import Settings
from spool.models import BlogPublishInput, Post
from spool.service.jobs import start_blog
from spool.temporal import connect
from tests.support.paths import HISTORIES
from tests.support.workers import running_worker
from workflows.blog import BlogPublishWorkflow


async def record_blog(client, settings: Settings) -> None:
    queue = settings.queue_pipeline
    acts = BlogActivities(settings)
    post = Post(
        post_id="replay-1",
        author_id="author-replay",
        title="Replay me",
        body="A post recorded for the replay tests.",
        tags=["replay"],
        followers=["f1", "f2"],
    )
    async with running_worker(
        client, queue, workflows=[BlogPublishWorkflow], activities=acts.activities()
    ):
        for name, p in (
            ("blog-publish", post),
            ("blog-edit", Post(**{**post.__dict__, "version": 2, "title": "Replay me, edited"})),
        ):
            job = await start_blog(client, settings, p)
            handle = client.get_workflow_handle(job.job_id)
            await handle.result()
            write_history(name, await handle.fetch_history())
        # Started as the temporal CLI would, without Spool's search attributes (the run
        # upserts them) and without its validation at the door.
        cli = Post(**{**post.__dict__, "post_id": "replay-cli"})
        handle = await client.start_workflow(
            BlogPublishWorkflow.run,
            BlogPublishInput(post=cli),
            id="post-replay-cli-v1",
            task_queue=queue,
        )
        await handle.result()
        write_history("blog-publish-started-without-attributes", await handle.fetch_history())
        bad = BlogPublishInput(post=Post(post_id="replay-bad", author_id="a", title="t", body=" "))
        handle = await client.start_workflow(
            BlogPublishWorkflow.run, bad, id="post-replay-bad-v1", task_queue=queue
        )
        with contextlib.suppress(WorkflowFailureError):  # the failure is the scenario
            await handle.result()
        write_history("blog-invalid", await handle.fetch_history())


async def record_chunked_video(client, settings: Settings, clips: Path) -> None:
    """Jobs of several chunks: one that ends ready, with a storyboard and captions (so the
    owner's notice waits for the captions announcement), its audio track scheduled after the
    long chunks; and one cancelled while its chunks encode."""
    from spool.ingest import ingest_video, start_video_job
    from spool.media import tools
    from tests.support import media_clips
    from tests.support.video import CHUNKED, started_chunks, video_workers
    from tests.support.waiting import eventually

    s = settings.model_copy(update=CHUNKED)
    speech = media_clips.make_clip(clips / "speech.mp4", width=640, height=360, seconds=4)
    tone = media_clips.make_clip(
        clips / "tone.mp4", width=640, height=360, seconds=8, speech=None, tone=True
    )
    async with video_workers(client, s):
        inp = ingest_video(s, speech, owner_id="replay", video_id="replay-ready-chunks")
        handle = await start_video_job(client, s, inp)
        await handle.result()
        write_history("video-ready-chunks", await handle.fetch_history())
        unpaced = tools.INPUT_OPTIONS
        tools.INPUT_OPTIONS = media_clips.pace_inputs()  # chunks still encode at the cancel
        try:
            inp = ingest_video(
                s, tone, owner_id="replay", captions=False, video_id="replay-cancelled-chunks"
            )
            handle = await start_video_job(client, s, inp)
            await eventually(lambda: started_chunks(handle), "a chunk to encode")
            await handle.cancel()
            with contextlib.suppress(WorkflowFailureError):  # the cancel is the scenario
                await handle.result()
        finally:
            tools.INPUT_OPTIONS = unpaced
        write_history("video-cancelled-chunks", await handle.fetch_history())


async def record_post(client, settings: Settings) -> None:
    """A post's own workflow: published, edited, unpublished, published again and deleted,
    then idle until it completes; and one scheduled a moment ahead, published by its timer."""
    from datetime import UTC, datetime, timedelta

    from spool.models import PostOpKind
    from tests.support.post_ops import entity_update
    from workflows.posts import PostWorkflow

    acts = BlogActivities(settings)
    post = Post(
        post_id="replay-life",
        author_id="author-replay",
        title="Replay my life",
        body="A post recorded for the replay tests.",
        followers=["f1"],
    )
    edited = Post(**{**post.__dict__, "version": 2, "title": "Replay my life, edited"})
    async with running_worker(
        client,
        settings.queue_pipeline,
        workflows=[PostWorkflow, BlogPublishWorkflow],
        activities=acts.activities(),
    ):
        for kind, fields in (
            (PostOpKind.PUBLISH, {"post": post}),
            (PostOpKind.PUBLISH, {"post": edited}),
            (PostOpKind.UNPUBLISH, {}),
            (PostOpKind.PUBLISH, {"post": edited}),
            (PostOpKind.DELETE, {}),
        ):
            await entity_update(client, settings, kind, post.post_id, idle_seconds=1, **fields)
        handle = client.get_workflow_handle(f"post-{post.post_id}")
        await handle.result()
        write_history("post-lifecycle", await handle.fetch_history())
        scheduled = Post(**{**post.__dict__, "post_id": "replay-scheduled"})
        at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        await entity_update(
            client,
            settings,
            PostOpKind.PUBLISH,
            "replay-scheduled",
            idle_seconds=1,
            post=scheduled,
            publish_at=at,
        )
        handle = client.get_workflow_handle("post-replay-scheduled")
        await handle.result()
        write_history("post-scheduled", await handle.fetch_history())


async def record_playable_video(client, settings: Settings, clips: Path) -> None:
    """A job that plays early: its first chunk split, its media tasks scheduled in waves, its
    captions started once it plays, its live playlists published as chunks end in order (the
    upload's AAC copied), then ready. (``video-ready-playable.json`` is the same job recorded
    before the waves, patches.PLAYABLE_FIRST: kept, for the runs started then.)"""
    from spool.ingest import ingest_video, start_video_job
    from tests.support import media_clips
    from tests.support.video import CHUNKED, video_workers

    s = settings.model_copy(update={**CHUNKED, "chunk_seconds": 24.0, "playable_rung": 360})
    talk = media_clips.make_clip(clips / "playable.mp4", width=640, height=360, seconds=12)
    async with video_workers(client, s):
        inp = ingest_video(s, talk, owner_id="replay", video_id="replay-playable-first")
        handle = await start_video_job(client, s, inp)
        await handle.result()
        write_history("video-ready-playable-first", await handle.fetch_history())


async def record_playable_other_sound(client, settings: Settings, clips: Path) -> None:
    """A job that plays early from an upload whose sound is Opus: its live audio encoded a
    part at a time until the whole AAC track is made (patches.LIVE_AUDIO_PART)."""
    import subprocess

    from spool.ingest import ingest_video, start_video_job
    from tests.support import media_clips
    from tests.support.video import CHUNKED, video_workers

    s = settings.model_copy(update={**CHUNKED, "chunk_seconds": 24.0, "playable_rung": 360})
    talk = media_clips.make_clip(clips / "opus.mp4", width=640, height=360, seconds=12)
    upload = clips / "opus.mkv"
    subprocess.run(
        [*media_clips.FFMPEG, "-i", str(talk), "-c:v", "copy", "-c:a", "libopus", str(upload)],
        check=True,
        capture_output=True,
    )
    async with video_workers(client, s):
        inp = ingest_video(s, upload, owner_id="replay", video_id="replay-playable-opus")
        handle = await start_video_job(client, s, inp)
        await handle.result()
        write_history("video-ready-playable-opus", await handle.fetch_history())


def write_history(name: str, history) -> None:
    (HISTORIES / f"{name}.json").write_text(history.to_json())


async def main(kinds: list[str]) -> None:
    from spool.process import single_threaded_blas

    single_threaded_blas()  # Whisper beside forked ffmpeg, as worker.py runs it
    HISTORIES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(
            port=free_port(), ui_port=None, db_filename=None, log_path=Path(tmp) / "temporal.log"
        )
        with server:
            settings = Settings(
                temporal_address=server.address,
                data_dir=Path(tmp) / "data",
                queue_pipeline="record-histories",
                queue_media="record-histories",
                queue_captions="record-histories",
            )
            client = await connect(settings, wait_seconds=30)
            if "blog" in kinds:
                await record_blog(client, settings)
            if "video" in kinds:
                await record_chunked_video(client, settings, Path(tmp))
            if "post" in kinds:
                await record_post(client, settings)
            if "playable" in kinds:
                await record_playable_video(client, settings, Path(tmp))
            if "playable-sound" in kinds:
                await record_playable_other_sound(client, settings, Path(tmp))
    print(f"wrote histories to {HISTORIES}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["blog"]))
