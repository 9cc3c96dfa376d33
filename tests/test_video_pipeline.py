"""The video pipeline end to end on a real Temporal dev server, real ffmpeg and real Whisper,
plus orchestration tests with stand-in activities and replay of saved histories."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import get_type_hints

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.video import (
    CaptionsActivities,
    EncodeActivities,
    PackageActivities,
    ProbeActivities,
    RecordActivities,
    VideoActivitySet,
)
from activities.webhooks import WebhookActivities
from spool.config import Settings
from spool.db import get_engine
from spool.db.video import get_caption_segments, get_video
from spool.ingest import ingest_video, start_video_job
from spool.models import (
    AudioTrackInput,
    AudioTrackResult,
    CaptionsState,
    ChunkInput,
    ChunkPlan,
    ChunkResult,
    EncodingPlan,
    EncodingPlanInput,
    ExtractAudioInput,
    ExtractAudioResult,
    HlsAudioInfo,
    HlsVariantInfo,
    JobState,
    MasterPlaylistInput,
    MasterPlaylistResult,
    NotifyOwnerInput,
    PackageInput,
    PackageResult,
    PosterInput,
    PosterResult,
    ProbeInput,
    ProbeResult,
    PublishEventInput,
    RecordCaptionsInput,
    RecordVideoInput,
    RenditionPlan,
    RenditionResult,
    StepStatus,
    StoryboardInput,
    StoryboardResult,
    TranscribeInput,
    TranscribeResult,
    VideoPipelineInput,
    VideoStatus,
)
from spool.storage import ObjectStorage, open_storage
from spool.storage.keys import audio_key, poster_key, video_prefix
from tests.support import media_clips
from tests.support.history import attempts_by_activity, heartbeating_activities
from tests.support.media_checks import check_srt, check_vtt, ffmpeg_processes
from tests.support.saved_histories import save_history
from tests.support.video import WORKFLOWS, video_workers
from tests.support.waiting import eventually
from workflows.video import VideoPipelineWorkflow

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def all_activities(acts: VideoActivitySet) -> list:
    return acts.pipeline_activities() + acts.media_activities() + acts.captions_activities()


async def run_job(client, settings, clip, **kwargs) -> tuple[VideoStatus, object]:
    inp = ingest_video(settings, clip, owner_id="owner-1", **kwargs)
    handle = await start_video_job(client, settings, inp)
    status = await handle.result()
    return status, handle


async def probe_stored(storage: ObjectStorage, key: str, scratch: Path) -> ProbeResult:
    """Probe a stored object the way a worker would: fetched into a local scratch file."""
    from spool.media.probe import probe

    local = scratch / f"probe-{uuid.uuid4().hex}"
    await asyncio.to_thread(storage.get_to, key, local)
    try:
        return await probe(local)
    finally:
        local.unlink(missing_ok=True)


def outbox_lines(settings: Settings) -> list[dict]:
    path = settings.resolved_notify_outbox
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- real media, real Whisper ---------------------------------------------------------------


async def test_1080p_with_speech_end_to_end(client, settings, clips, whisper_ready):
    clip = media_clips.make_clip(clips / "speech1080.mp4", width=1920, height=1080)
    started = time.monotonic()
    async with video_workers(client, settings):
        status, handle = await run_job(client, settings, clip)
    took = time.monotonic() - started
    assert status.state == JobState.READY, status.error
    assert [r.height for r in status.renditions] == [1080, 720, 480, 360]
    storage = open_storage(settings)
    for r in status.renditions:
        info = await probe_stored(storage, r.key, clips)
        assert info.height == r.height and info.width % 2 == 0 and info.video_codec == "h264"
        assert abs(info.duration - status.probe.duration) <= 0.1
        assert info.has_audio
    assert storage.read_bytes(status.poster.key)[:3] == b"\xff\xd8\xff"
    assert status.captions_state == CaptionsState.AVAILABLE
    # The intermediate WAV is gone once the captions are written.
    assert not storage.exists(audio_key(status.video_id))
    vtt = storage.read_bytes(status.captions.vtt_key).decode()
    srt = storage.read_bytes(status.captions.srt_key).decode()
    cues = status.captions.segment_count
    check_vtt(vtt, cues)
    check_srt(srt, cues)
    transcript = json.loads(storage.read_bytes(status.captions.transcript_key))
    spoken = media_clips.normalized_words(media_clips.SPEECH_TEXT)
    heard = set(media_clips.normalized_words(transcript["text"]))
    assert sum(w in heard for w in spoken) / len(spoken) >= 0.8, transcript["text"]
    engine = get_engine(settings)
    row = get_video(engine, status.video_id)
    assert row["status"] == JobState.READY and row["captions_state"] == CaptionsState.AVAILABLE
    assert len(row["renditions"]) == 4 and row["poster_key"] == status.poster.key
    assert row["metadata"]["height"] == 1080
    segments = get_caption_segments(engine, status.video_id)
    assert len(segments) == cues and segments[0]["end"] > segments[0]["start"]
    sent = [n for n in outbox_lines(settings) if n["event_id"] == f"video-done:{status.video_id}"]
    assert len(sent) == 1 and sent[0]["event_type"] == "video.ready"
    times = ", ".join(f"{r.name} {r.seconds_taken:.1f}s" for r in status.renditions)
    print(f"\n1080p 3.5 s clip end to end: {took:.1f} s (transcodes: {times})")
    save_history("video-ready-1080p", await handle.fetch_history())
    child = client.get_workflow_handle(f"video-{status.video_id}-captions")
    save_history("captions-available", await child.fetch_history())


async def test_720p_source_has_no_1080p(client, settings, clips):
    clip = media_clips.make_clip(
        clips / "c720.mp4", width=1280, height=720, seconds=2, speech=None, tone=True
    )
    async with video_workers(client, settings):
        status, _ = await run_job(client, settings, clip, captions=False)
    assert status.state == JobState.READY
    assert [r.height for r in status.renditions] == [720, 480, 360]


async def test_small_odd_silent_source_one_even_rendition_captions_skipped(client, settings, clips):
    clip = media_clips.make_clip(clips / "odd.mp4", width=321, height=241, seconds=2, speech=None)
    async with video_workers(client, settings):
        status, handle = await run_job(client, settings, clip)
    assert status.state == JobState.READY, status.error
    assert [(r.width % 2, r.height) for r in status.renditions] == [(0, 240)]
    # no audio track: captions are skipped, not failed
    assert status.captions_state == CaptionsState.SKIPPED
    steps = {s.name: s.state for s in status.steps}
    assert steps["extract_audio"] == steps["transcribe"] == StepStatus.SKIPPED
    row = get_video(get_engine(settings), status.video_id)
    assert row["captions_state"] == CaptionsState.SKIPPED
    save_history("video-ready-silent", await handle.fetch_history())


async def test_rotated_portrait_renditions_are_upright(client, settings, clips):
    clip = media_clips.make_clip(
        clips / "portrait.mp4", width=640, height=360, seconds=2, speech=None, tone=True, rotate=90
    )
    async with video_workers(client, settings):
        status, handle = await run_job(client, settings, clip, captions=False)
    assert status.state == JobState.READY
    save_history("video-ready-portrait", await handle.fetch_history())
    # By the short side: the source's own full size (360x640 is 360p), never a narrower one.
    assert [(r.name, r.width, r.height) for r in status.renditions] == [("360p", 360, 640)]
    for r in status.renditions:
        info = await probe_stored(open_storage(settings), r.key, clips)
        assert info.width < info.height and info.rotation == 0


@pytest.mark.parametrize("kind", ["audio-only", "text", "empty", "truncated"])
async def test_invalid_upload_fails_once_with_a_clear_message(client, settings, clips, kind):
    path = {
        "audio-only": lambda: media_clips.make_audio_only(clips / "voice.m4a"),
        "text": lambda: media_clips.make_text_file(clips / "notes.txt"),
        "empty": lambda: media_clips.make_empty(clips / "empty.mp4"),
        "truncated": lambda: media_clips.make_truncated_mp4(clips / "cut.mp4"),
    }[kind]()
    expected = {
        "audio-only": "no video stream",
        "text": "not a video",
        "empty": "empty",
        "truncated": "not a video",
    }[kind]
    async with video_workers(client, settings):
        status, handle = await run_job(client, settings, path)
    assert status.state == JobState.FAILED
    assert expected in status.error, status.error
    assert (await attempts_by_activity(handle))["probe"] == [1]
    row = get_video(get_engine(settings), status.video_id)
    assert row["status"] == JobState.FAILED and expected in row["errors"]["probe"]
    sent = [n for n in outbox_lines(settings) if n["event_id"] == f"video-done:{status.video_id}"]
    assert [n["event_type"] for n in sent] == ["video.failed"]
    if kind == "text":
        save_history("video-failed-invalid", await handle.fetch_history())


async def test_captions_failure_leaves_renditions(client, settings, clips):
    clip = media_clips.make_clip(
        clips / "tone.mp4", width=640, height=360, seconds=2, speech=None, tone=True
    )
    broken = settings.model_copy(update={"whisper_model": "/nonexistent/whisper-model"})
    async with video_workers(client, broken):
        inp = ingest_video(broken, clip, owner_id="owner-1")
        inp.captions_max_attempts = 2
        handle = await start_video_job(client, broken, inp)
        status = await handle.result()
    assert status.state == JobState.READY_WITH_ERRORS
    assert [r.height for r in status.renditions] == [360]
    assert status.captions_state == CaptionsState.FAILED
    assert "Whisper model" in status.error
    steps = {s.name: s.state for s in status.steps}
    assert steps["transcribe"] == StepStatus.FAILED and steps["extract_audio"] == StepStatus.DONE
    row = get_video(get_engine(broken), inp.video_id)
    assert row["status"] == JobState.READY_WITH_ERRORS
    assert row["captions_state"] == CaptionsState.FAILED
    child = client.get_workflow_handle(f"video-{inp.video_id}-captions")
    # History keeps the last attempt's start: two attempts, then the branch gave up.
    assert (await attempts_by_activity(child))["transcribe"] == [2]
    save_history("video-captions-failed", await handle.fetch_history())
    save_history("captions-failed", await child.fetch_history())


async def test_cancel_during_transcode(client, settings, clips, own_scratch, monkeypatch):
    from spool.media import tools

    # Paced input: the 20 s clip cannot be encoded in under 20 s, however fast the machine.
    monkeypatch.setattr(tools, "INPUT_OPTIONS", media_clips.pace_inputs())
    clip = media_clips.make_paced_clip(clips / "paced.mp4")
    async with video_workers(client, settings):
        inp = ingest_video(settings, clip, owner_id="owner-1", captions=False, renditions=["360p"])
        handle = await start_video_job(client, settings, inp)
        await wait_for_step(handle, "encode-00000", min_percent=1.0)  # the first chunk
        assert ffmpeg_processes(own_scratch)
        cancelled_at = time.monotonic()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        took = time.monotonic() - cancelled_at
        # The workflow waits for the activity to acknowledge the cancel, and the activity
        # kills and reaps its ffmpeg before it does: nothing may be left running now.
        assert ffmpeg_processes(own_scratch) == []
        status = await handle.query("status", result_type=VideoStatus)
    assert status.state == JobState.CANCELLED
    steps = {s.name: s for s in status.steps}
    assert steps["rendition-180p"].state == "cancelled"
    assert isinstance(err.value.cause, CancelledError)
    print(f"\ncancel to workflow cancelled: {took:.2f} s")
    storage = open_storage(settings)
    # The poster may have finished before the cancel; the rendition left nothing behind.
    left = storage.list_prefix(video_prefix(inp.video_id))
    assert set(left) <= {inp.source_key, poster_key(inp.video_id)}, left
    row = get_video(get_engine(settings), inp.video_id)
    assert row["status"] == JobState.CANCELLED
    sent = [n for n in outbox_lines(settings) if n["event_id"] == f"video-done:{inp.video_id}"]
    assert [n["event_type"] for n in sent] == ["video.cancelled"]
    save_history("video-cancelled", await handle.fetch_history())


async def wait_for_step(
    handle, name: str, *, min_percent: float = 0.0, min_attempt: int = 1, within: float = 60.0
) -> None:
    """Until the server holds a heartbeat of at least min_percent for the step's activity."""

    async def started() -> bool:
        return any(
            pending.activity_id == name
            and pending.attempt >= min_attempt
            and percent >= min_percent
            for pending, percent in await heartbeating_activities(handle)
        )

    await eventually(started, f"step {name} to start", within=within, every=0.2)


async def test_killed_media_worker_is_replaced(client, settings, clips, temporal_server, tmp_path):
    clip = media_clips.make_paced_clip(clips / "paced.mp4")
    media_queue = f"{settings.queue_pipeline}-media"
    split = settings.model_copy(update={"queue_media": media_queue})
    # The media workers' scratch roots, so the ffmpeg processes found by this path are theirs,
    # not another test run's on the machine.
    worker_tmp = tmp_path / "media-worker-tmp"
    worker_tmp.mkdir()

    def start_media_worker(pace: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.run_media_worker",
                temporal_server.address,
                str(settings.data_dir),
                media_queue,
                pace,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(worker_tmp)},
        )
        assert proc.stdout.readline().strip() == b"ready"
        return proc

    # The first worker reads its input at the clip's own pace: its 20 s encode is still
    # running whenever the test sees progress, on any machine. The replacement is unpaced.
    first = start_media_worker("paced")
    second = None
    try:
        async with video_workers(client, split):
            inp = ingest_video(split, clip, owner_id="owner-1", captions=False, renditions=["360p"])
            handle = await start_video_job(client, split, inp)
            await wait_for_step(handle, "encode-00000", min_percent=1.0)  # the first chunk
            assert ffmpeg_processes(str(worker_tmp))
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = time.monotonic()
            await eventually(
                lambda: ffmpeg_processes(str(worker_tmp)) == [],
                "the killed worker's ffmpeg to die with it",
                within=60,
                every=0.05,
            )
            second = start_media_worker("normal")
            # Retried only after the heartbeat timeout tells the server the worker is gone.
            await wait_for_step(handle, "encode-00000", min_attempt=2, within=120)
            noticed = time.monotonic() - killed_at
            status = await handle.result()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert status.state == JobState.READY
    assert [r.height for r in status.renditions] == [180]
    assert (await attempts_by_activity(handle))["encode-00000"] == [2]
    print(f"\nkilled worker's transcode restarted after {noticed:.1f} s")


# --- orchestration with stand-in activities --------------------------------------------------


class FakeVideo:
    """Stand-ins under the real activity names with the real signatures: they take and return
    the real boundary dataclasses, so the workflow's inputs and the results it decodes are
    checked here too (test_stand_ins_have_the_real_signatures keeps them in step)."""

    def __init__(
        self,
        *,
        height=1080,
        has_audio=True,
        fail_renditions=(),
        fail_transcribe=False,
        spoken_segments=1,
        hold_renditions: asyncio.Event | None = None,
        fail_notices=False,
        fail_events=False,
        hold_notices: asyncio.Event | None = None,
        hold_first_final_record: asyncio.Event | None = None,
    ):
        self.hold_notices = hold_notices
        self.hold_first_final_record = hold_first_final_record
        self.height, self.has_audio = height, has_audio
        self.fail_notices, self.fail_events = fail_notices, fail_events
        self.events: list[PublishEventInput] = []
        self.fail_renditions = set(fail_renditions)
        self.fail_transcribe = fail_transcribe
        self.spoken_segments = spoken_segments
        self.hold = hold_renditions
        self.records: list[RecordVideoInput | RecordCaptionsInput] = []
        self.notices: list[JobState] = []

    def activities(self) -> list:
        return [
            self.probe,
            self.record,
            self.record_captions,
            self.notify_owner,
            self.publish_event,
            self.extract_poster,
            self.extract_audio,
            self.transcribe,
            self.plan_encoding,
            self.encode_chunk,
            self.encode_audio,
            self.package_rendition,
            self.make_storyboard,
            self.publish_hls,
        ]

    def final_status(self) -> JobState | None:
        """The job state of the last video record."""
        states = [r.status for r in self.records if isinstance(r, RecordVideoInput)]
        return states[-1] if states else None

    def recorded_captions(self) -> list[CaptionsState]:
        return [r.state for r in self.records if isinstance(r, RecordCaptionsInput)]

    @activity.defn(name="video.probe")
    async def probe(self, inp: ProbeInput) -> ProbeResult:
        return ProbeResult(
            duration=3.0,
            width=self.height * 16 // 9,
            height=self.height,
            has_video=True,
            has_audio=self.has_audio,
        )

    @activity.defn(name="video.record")
    async def record(self, inp: RecordVideoInput) -> None:
        hold = self.hold_first_final_record
        if hold is not None and inp.status == JobState.READY:
            self.hold_first_final_record = None
            await hold.wait()  # interrupted by the cancel: this attempt never records
            return
        self.records.append(inp)

    @activity.defn(name="video.record_captions")
    async def record_captions(self, inp: RecordCaptionsInput) -> None:
        self.records.append(inp)

    @activity.defn(name="video.notify_owner")
    async def notify_owner(self, inp: NotifyOwnerInput) -> int:
        if self.fail_notices:
            raise ApplicationError("mail server gone", non_retryable=True)
        if self.hold_notices is not None:
            await self.hold_notices.wait()
        self.notices.append(inp.state)
        return 1

    @activity.defn(name="webhooks.publish_event")
    async def publish_event(self, inp: PublishEventInput) -> int:
        if self.fail_events:
            raise ApplicationError("receiver gone", non_retryable=True)
        self.events.append(inp)
        return 1

    @activity.defn(name="video.extract_poster")
    async def extract_poster(self, inp: PosterInput) -> PosterResult:
        return PosterResult(key="k/poster.jpg", width=2, height=2, size_bytes=1)

    # Chunked encoding: one chunk; a rendition in fail_renditions fails in it.
    @activity.defn(name="video.plan_encoding")
    async def plan_encoding(self, inp: EncodingPlanInput) -> EncodingPlan:
        return EncodingPlan(
            chunks=[ChunkPlan(0, 0.0, inp.probe.duration)],
            renditions=[RenditionPlan(f"{h}p", h, 1) for h in inp.heights],
            fps=30.0,
            segment_seconds=4.0,
            audio_kbps=128,
            thumb_every=1.0,
        )

    @activity.defn(name="video.encode_chunk")
    async def encode_chunk(self, inp: ChunkInput) -> ChunkResult:
        for percent in (10.0, 50.0):
            activity.heartbeat({"percent": percent})
            if self.hold is not None:
                await self.hold.wait()
        failed = {
            r.name: "encoder exploded" for r in inp.renditions if r.height in self.fail_renditions
        }
        if len(failed) == len(inp.renditions):
            raise ApplicationError("encoder exploded", non_retryable=True)
        return ChunkResult(
            index=inp.chunk.index,
            failed=failed,
            thumbs=3,
            files={
                r.name: f"k/{r.name}/{inp.chunk.index}"
                for r in inp.renditions
                if r.name not in failed
            },
        )

    @activity.defn(name="video.encode_audio")
    async def encode_audio(self, inp: AudioTrackInput) -> AudioTrackResult:
        return AudioTrackResult(
            key="k/audio.m4a", hls=HlsAudioInfo(1, "mp4a.40.2", "audio/index.m3u8")
        )

    @activity.defn(name="video.package_rendition")
    async def package_rendition(self, inp: PackageInput) -> PackageResult:
        r = inp.rendition
        return PackageResult(
            rendition=RenditionResult(
                name=r.name,
                key=f"k/{r.height}",
                width=2,
                height=r.height,
                size_bytes=1,
                bitrate_kbps=1,
                duration=inp.duration,
            ),
            variant=HlsVariantInfo(
                r.name, 2, r.height, 1, 1, "avc1.64001f", 30.0, f"{r.name}/index.m3u8"
            ),
        )

    @activity.defn(name="video.make_storyboard")
    async def make_storyboard(self, inp: StoryboardInput) -> StoryboardResult:
        return StoryboardResult(
            vtt_key="k/storyboard.vtt", sprites=1, tile_width=2, tile_height=2, every=inp.every
        )

    @activity.defn(name="video.publish_hls")
    async def publish_hls(self, inp: MasterPlaylistInput) -> MasterPlaylistResult:
        return MasterPlaylistResult(key="k/master.m3u8")

    @activity.defn(name="video.extract_audio")
    async def extract_audio(self, inp: ExtractAudioInput) -> ExtractAudioResult:
        return ExtractAudioResult(audio_key="k/a.wav", duration=3.0)

    @activity.defn(name="video.transcribe")
    async def transcribe(self, inp: TranscribeInput) -> TranscribeResult:
        if self.fail_transcribe:
            raise ApplicationError("whisper broke")
        return TranscribeResult(
            vtt_key="k/v",
            srt_key="k/s",
            transcript_key="k/t",
            segment_count=self.spoken_segments,
            language=inp.language,
            excerpt="hello" if self.spoken_segments else "",
        )


def registered(*classes: type) -> dict[str, object]:
    """Registered activity name -> method, for every activity the classes define."""
    found = {}
    for cls in classes:
        for fn in vars(cls).values():
            defn = getattr(fn, "__temporal_activity_definition", None)
            if defn is not None:
                found[defn.name] = fn
    return found


def test_stand_ins_have_the_real_signatures():
    real = registered(
        ProbeActivities,
        EncodeActivities,
        PackageActivities,
        CaptionsActivities,
        RecordActivities,
        WebhookActivities,
    )
    fakes = registered(FakeVideo)
    assert set(fakes) == set(real)
    for name, fake in fakes.items():
        assert get_type_hints(fake) == get_type_hints(real[name]), name
        assert inspect.iscoroutinefunction(fake) == inspect.iscoroutinefunction(real[name])


async def run_fake(client, task_queue, fake: FakeVideo, *, until=None, **inp_kwargs):
    video_id = uuid.uuid4().hex[:12]
    inp = VideoPipelineInput(
        video_id=video_id,
        owner_id="o",
        source_key="k/source",
        queue_pipeline=task_queue,
        queue_media=task_queue,
        queue_captions=task_queue,
        captions_max_attempts=2,
        **inp_kwargs,
    )
    async with Worker(
        client, task_queue=task_queue, workflows=WORKFLOWS, activities=fake.activities()
    ):
        handle = await client.start_workflow(
            VideoPipelineWorkflow.run, inp, id=f"video-{video_id}", task_queue=task_queue
        )
        if until is not None:
            await until(handle)
        return await handle.result(), handle


async def test_one_failed_rendition_leaves_the_others(client, task_queue):
    fake = FakeVideo(fail_renditions={720})
    status, handle = await run_fake(client, task_queue, fake)
    assert status.state == JobState.READY_WITH_ERRORS
    assert [r.height for r in status.renditions] == [1080, 480, 360]
    steps = {s.name: s for s in status.steps}
    assert steps["rendition-720p"].state == StepStatus.FAILED
    assert "encoder exploded" in steps["rendition-720p"].last_error
    assert steps["poster"].state == StepStatus.DONE
    assert status.captions_state == CaptionsState.AVAILABLE
    assert fake.notices == [JobState.READY_WITH_ERRORS]
    assert fake.final_status() == JobState.READY_WITH_ERRORS
    save_history("video-rendition-failed", await handle.fetch_history())


async def test_no_rendition_at_all_fails_the_job(client, task_queue):
    fake = FakeVideo(height=480, fail_renditions={480, 360})
    status, handle = await run_fake(client, task_queue, fake)
    assert status.state == JobState.FAILED and "no rendition" in status.error
    assert fake.notices == [JobState.FAILED]
    save_history("video-failed-every-rendition", await handle.fetch_history())


async def test_no_requested_rendition_fits_the_source(client, task_queue):
    """Nothing to plan: the poster and the captions are still made, and the job fails for
    want of a rendition."""
    fake = FakeVideo(height=480)
    status, handle = await run_fake(client, task_queue, fake, renditions=["1080p"])
    assert status.state == JobState.FAILED and "no rendition" in status.error
    steps = {s.name: s.state for s in status.steps}
    assert "plan" not in steps and steps["poster"] == StepStatus.DONE
    assert status.captions_state == CaptionsState.AVAILABLE
    assert fake.notices == [JobState.FAILED]
    save_history("video-failed-nothing-to-plan", await handle.fetch_history())


async def test_failed_captions_branch_is_ready_with_errors(client, task_queue):
    fake = FakeVideo(height=360, fail_transcribe=True)
    status, _ = await run_fake(client, task_queue, fake)
    assert status.state == JobState.READY_WITH_ERRORS
    assert status.captions_state == CaptionsState.FAILED
    assert [r.height for r in status.renditions] == [360]


async def test_captions_available_before_renditions_and_progress_query(client, task_queue):
    hold = asyncio.Event()
    fake = FakeVideo(height=720, hold_renditions=hold)

    async def check_while_running(handle) -> None:
        deadline = time.monotonic() + 20
        while CaptionsState.AVAILABLE not in fake.recorded_captions():
            assert time.monotonic() < deadline, fake.records
            await asyncio.sleep(0.1)
        while True:  # the child has finished once the parent has heard of it
            status = await handle.query("status", result_type=VideoStatus)
            if status.captions_state == CaptionsState.AVAILABLE or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        steps = {s.name: s.state for s in status.steps}
        assert status.state == "processing" and status.captions_state == CaptionsState.AVAILABLE
        assert steps["rendition-720p"] == StepStatus.RUNNING
        assert steps["transcribe"] == StepStatus.DONE
        from spool.service.jobs import status as job_view

        merged = (await job_view(handle._client, handle.id)).model_dump(mode="json")
        by_name = {s["name"]: s for s in merged["steps"]}
        assert by_name["rendition-720p"]["percent"] == 10.0
        hold.set()

    status, handle = await run_fake(client, task_queue, fake, until=check_while_running)
    assert status.state == JobState.READY
    assert fake.notices == [JobState.READY]
    assert len(fake.notices) == 1


async def test_record_captions_drops_the_intermediate_audio_idempotently(tmp_path):
    from spool.db.video import ensure_video
    from spool.models import RecordCaptionsInput

    settings = Settings(data_dir=tmp_path / "data")
    acts = VideoActivitySet.from_settings(settings)
    ensure_video(acts.records.engine, "v-audio", "owner-1", JobState.PROCESSING)
    key = audio_key("v-audio")
    acts.files.storage.put_bytes(b"RIFF....WAVE", key)
    inp = RecordCaptionsInput("v-audio", CaptionsState.AVAILABLE, "en")
    env = ActivityEnvironment()
    await env.run(acts.captions.record_captions, inp)
    assert not acts.files.storage.exists(key)
    await env.run(acts.captions.record_captions, inp)  # a retry finds nothing to delete: still fine
    assert get_video(acts.records.engine, "v-audio")["captions_state"] == CaptionsState.AVAILABLE


async def test_captions_available_is_announced_once_with_the_callback(client, task_queue):
    fake = FakeVideo()
    status, _ = await run_fake(
        client, task_queue, fake, callback_url="https://hooks.example.com/spool"
    )
    assert status.state == "ready"
    assert len(fake.events) == 1
    event = fake.events[0]
    assert event.event_type == "video.captions_available"
    assert event.event_id == f"captions-available:{status.video_id}"
    assert event.callback_url == "https://hooks.example.com/spool"
    assert event.payload["segments"] == 1


async def test_audio_without_speech_ends_with_captions_none_and_says_so(client, task_queue):
    """A transcript with no cue is "none": not available with invented text, not an error,
    and the owner hears it as video.captions_none."""
    fake = FakeVideo(spoken_segments=0)
    status, _ = await run_fake(
        client, task_queue, fake, callback_url="https://hooks.example.com/spool"
    )
    assert status.state == "ready" and status.error is None
    assert status.captions_state == CaptionsState.NONE
    [event] = fake.events
    assert (event.event_type, event.event_id) == (
        "video.captions_none",
        f"captions-none:{status.video_id}",
    )
    assert event.payload["captions_state"] == "none" and event.payload["segments"] == 0


async def test_undeliverable_notices_do_not_fail_a_finished_job(client, task_queue):
    fake = FakeVideo(fail_notices=True, fail_events=True)
    status, _ = await run_fake(client, task_queue, fake)
    assert status.state == "ready"
    steps = {s.name: s for s in status.steps}
    assert steps["notify"].state == "failed"
    assert "mail server gone" in steps["notify"].last_error
    assert fake.final_status() == JobState.READY


async def test_a_job_that_ends_without_captions_leaves_no_intermediate_audio(tmp_path):
    """A cancelled or failed captions branch never reaches record_captions: the job's final
    record drops the WAV instead; records while the job runs keep it for transcribe."""
    from spool.models import RecordVideoInput

    acts = VideoActivitySet.from_settings(Settings(data_dir=tmp_path / "data"))
    key = audio_key("v-end")
    acts.files.storage.put_bytes(b"RIFF....WAVE", key)
    env = ActivityEnvironment()
    await env.run(acts.records.record, RecordVideoInput("v-end", "o", status=JobState.PROCESSING))
    assert acts.files.storage.exists(key)
    await env.run(acts.records.record, RecordVideoInput("v-end", "o", status=JobState.CANCELLED))
    assert not acts.files.storage.exists(key)
    await env.run(acts.records.record, RecordVideoInput("v-end", "o", status=JobState.CANCELLED))
    assert get_video(acts.records.engine, "v-end")["status"] == "cancelled"


def cancel_once(condition):
    """For run_fake's ``until``: cancel the job as soon as its status meets the condition."""

    async def wait_then_cancel(handle) -> None:
        for _ in range(200):
            if condition(await handle.query("status", result_type=VideoStatus)):
                await handle.cancel()
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{condition.__name__}: never reached")

    return wait_then_cancel


async def test_cancel_after_the_job_ended_only_stops_its_notices(client, task_queue):
    """A cancel that arrives while the owner's notice is still being delivered (a receiver
    down for hours, say) must not turn a ready job into a cancelled one."""
    hold = asyncio.Event()
    fake = FakeVideo(hold_notices=hold)

    def notifying(status: VideoStatus) -> bool:
        return any(s.name == "notify" and s.state == "running" for s in status.steps)

    try:
        status, handle = await run_fake(client, task_queue, fake, until=cancel_once(notifying))
    finally:
        hold.set()
    assert status.state == "ready"
    assert {s.name: s.state for s in status.steps}["notify"] == "cancelled"
    assert fake.final_status() == JobState.READY
    desc = await handle.describe()
    assert desc.status.name == "COMPLETED"
    save_history("video-ready-notice-cancelled", await handle.fetch_history())


async def test_cancel_while_the_outcome_is_being_recorded_still_records_it(client, task_queue):
    hold = asyncio.Event()
    fake = FakeVideo(hold_first_final_record=hold)

    def recording(status: VideoStatus) -> bool:
        return status.state == "ready" and fake.hold_first_final_record is None

    try:
        status, handle = await run_fake(client, task_queue, fake, until=cancel_once(recording))
    finally:
        hold.set()
    assert status.state == "ready"
    assert fake.final_status() == JobState.READY
    assert (await handle.describe()).status.name == "COMPLETED"
    save_history("video-ready-record-cancelled", await handle.fetch_history())
