"""Chunked encoding end to end (issue 10): real Temporal dev server, real workers, real ffmpeg,
real object storage (a local directory, and S3Proxy where hosts must share nothing), and the
API serving HLS and storyboards over HTTP to ffprobe.

Slow work is held by paced inputs (tests/support/media_clips.pace_inputs: an N-second chunk takes at
least N seconds to encode on any machine); waits are on conditions with generous deadlines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

import workflows.policies as policies
from activities.video import EncodeActivities, VideoActivitySet
from spool.config import Settings
from spool.db import get_engine
from spool.db.video import get_video
from spool.ingest import ingest_video, start_video_job
from spool.media import tools
from spool.media.chunks import RenditionSpec
from spool.media.probe import probe
from spool.models import (
    ChunkInput,
    EncodingPlanInput,
    JobState,
    ProbeInput,
    StepStatus,
    VideoStatus,
)
from spool.service.jobs import status as job_view
from spool.storage import keys, open_storage
from tests.support import media_clips
from tests.support.history import activity_events, attempts_by_activity
from tests.support.live_api import live_api
from tests.support.media_checks import ffmpeg_processes, ffprobe_json, playlist_uris
from tests.support.processes import environ_without_spool, spool_variables
from tests.support.start_order import StartOrder
from tests.support.video import (
    chunked,
    started_chunks,
    tasks_taken_by_a_late_host,
    video_workers,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
FPS = 15


async def decoded_video(url: str) -> tuple[int, int, list[float]]:
    """(frames decoded, height, keyframe times) of the first video stream at ``url``."""
    counted = await asyncio.to_thread(
        ffprobe_json,
        url,
        "-select_streams",
        "v:0",
        "-count_frames",
        "-show_entries",
        "stream=nb_read_frames,height",
    )
    stream = counted["streams"][0]
    packets = await asyncio.to_thread(
        ffprobe_json, url, "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags"
    )
    keyframes = [
        round(float(p["pts_time"]), 3) for p in packets["packets"] if "K" in p.get("flags", "")
    ]
    return int(stream["nb_read_frames"]), int(stream["height"]), keyframes


def segment_starts(playlist: str) -> list[float]:
    """Where each segment of a media playlist starts, from its EXTINF durations."""
    starts, at = [], 0.0
    for line in playlist.splitlines():
        if line.startswith("#EXTINF:"):
            starts.append(round(at, 3))
            at += float(line.removeprefix("#EXTINF:").split(",", 1)[0])
    return starts


def work_objects(settings: Settings, video_id: str) -> list[str]:
    return open_storage(settings).list_prefix(keys.work_prefix(video_id))


# --- a whole job, played over HTTP ---------------------------------------------------------


async def test_ready_job_plays_every_variant_over_http(client, settings, clips):
    """Every rendition's MP4 has the source's frames; the master playlist's variants decode
    over HTTP with their keyframes and segments at the same times; audio and storyboard are
    served; intermediate chunks and thumbnails are gone."""
    s = chunked(settings)
    clip = media_clips.make_clip(
        clips / "ladder.mp4", width=854, height=480, seconds=6, fps=FPS, speech=None, tone=True
    )
    async with video_workers(client, s) as acts:
        inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
        handle = await start_video_job(client, s, inp)
        status: VideoStatus = await handle.result()
    assert status.state == JobState.READY, status.error
    assert [r.name for r in status.renditions] == ["480p", "360p"]
    # probe, 3 chunks, audio and poster in this one process: the upload was downloaded once
    assert acts.files.sources.downloads == 1
    source_frames = 6 * FPS
    storage = open_storage(s)
    for r in status.renditions:
        local = clips / f"{inp.video_id}-{r.name}.mp4"
        storage.get_to(r.key, local)
        frames, height, _ = await decoded_video(str(local))
        assert (frames, height) == (source_frames, r.height), r.name
        assert (await probe(local)).has_audio
    steps = {step.name: step for step in status.steps}
    for name in (
        "probe",
        "plan",
        "encode",
        "rendition-480p",
        "rendition-360p",
        "audio",
        "poster",
        "package",
        "storyboard",
        "hls",
        "notify",
    ):
        assert steps[name].state == StepStatus.DONE, (name, steps[name])
    assert steps["rendition-360p"].percent == 100.0
    row = get_video(get_engine(s), inp.video_id)
    assert row["hls_key"] == keys.hls_master_key(inp.video_id)
    assert row["storyboard_key"] == keys.storyboard_vtt_key(inp.video_id)
    assert work_objects(s, inp.video_id) == []

    async with live_api(s, client) as base, httpx.AsyncClient(base_url=base) as http:
        hls = f"{base}/v1/videos/{inp.video_id}/hls"
        master = await http.get(f"{hls}/master.m3u8")
        assert master.status_code == 200
        assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
        variants = playlist_uris(master.text)
        assert variants == ["480p/index.m3u8", "360p/index.m3u8"]
        assert 'URI="audio/index.m3u8"' in master.text
        starts, keyframes = {}, {}
        for uri in variants:
            playlist = await http.get(f"{hls}/{uri}")
            assert playlist.status_code == 200
            starts[uri] = segment_starts(playlist.text)
            frames, height, keyframes[uri] = await decoded_video(f"{hls}/{uri}")
            assert frames == source_frames and f"{height}p" == uri.split("/")[0]
            segment = playlist_uris(playlist.text)[0]
            got = await http.get(
                f"{hls}/{uri.split('/')[0]}/{segment}", headers={"Range": "bytes=0-99"}
            )
            assert got.status_code == 206 and got.headers["content-type"] == "video/iso.segment"
        # Players switch variants at segment starts: they must be the same instants.
        assert starts["480p/index.m3u8"] == starts["360p/index.m3u8"] == [0.0, 2.0, 4.0]
        assert keyframes["480p/index.m3u8"] == keyframes["360p/index.m3u8"]
        first = keyframes["360p/index.m3u8"][0]
        assert [round(k - first, 3) for k in keyframes["360p/index.m3u8"]] == [0.0, 2.0, 4.0]
        audio = await asyncio.to_thread(
            ffprobe_json, f"{hls}/audio/index.m3u8", "-show_entries", "format=duration"
        )
        assert abs(float(audio["format"]["duration"]) - 6) < 0.1
        # In step with the pictures: the sound of source time 0 (after the AAC encoder's 1024
        # priming samples) plays with the first picture, which x264's reordering delays.
        sound = await asyncio.to_thread(
            ffprobe_json,
            f"{hls}/audio/index.m3u8",
            "-show_entries",
            "packet=pts_time:stream=sample_rate",
        )
        sound_zero = float(sound["packets"][0]["pts_time"]) + 1024 / int(
            sound["streams"][0]["sample_rate"]
        )
        assert first > 0 and abs(sound_zero - first) < 0.002, (sound_zero, first)

        track = await http.get(f"{base}/v1/videos/{inp.video_id}/storyboard.vtt")
        assert track.status_code == 200 and track.headers["content-type"].startswith("text/vtt")
        cues = re.findall(r"^(storyboard/(\d+)\.jpg)#xywh=\d+,\d+,\d+,\d+$", track.text, re.M)
        assert len(cues) == 6  # one a second
        for sprite in sorted({path for path, _ in cues}):
            # Relative to the track's own URL, as a player resolves it.
            got = await http.get(f"{base}/v1/videos/{inp.video_id}/{sprite}")
            assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff", sprite
        assert sorted({int(n) for _, n in cues}) == [0, 1]  # 6 tiles on 2x2 sheets

        for bad in (
            "../source",
            "480p/../../source",
            "master.m3u8x",
            "480p/seg-1.m4s",
            "480p/index.m3u8/x",
            "evil/index.m3u8",
        ):
            refused = await http.get(f"{hls}/{bad}")
            assert refused.status_code == 404, bad
            assert refused.json()["error"]["type"] == "not_found", bad
        assert (
            await http.get(f"{base}/v1/videos/{inp.video_id}/storyboard/x.jpg")
        ).status_code == 404


# --- the plan cuts on the source's keyframes ------------------------------------------------


async def test_plan_cuts_chunks_on_the_keyframes_the_probe_found(settings, clips):
    """The probe lists the upload's keyframes into the job's work objects; the plan moves
    its chunk boundaries onto them. A job probed before keyframes were stored (no object)
    is planned on the segment grid, as it was."""
    s = chunked(settings)  # 2 s chunks of 2 s segments
    clip = media_clips.make_marked_clip(
        clips / "gop-2_5s.mp4", width=320, height=180, seconds=12, flash_at=7.0, gop=75
    )
    inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
    acts, env = VideoActivitySet.from_settings(s), ActivityEnvironment()
    probe = await env.run(acts.probing.probe, ProbeInput(inp.video_id, inp.source_key))
    stored = json.loads(acts.files.storage.read_bytes(keys.keyframes_key(inp.video_id)))
    assert stored == pytest.approx([0, 2.5, 5, 7.5, 10], abs=1e-6)
    assert keys.keyframes_key(inp.video_id) in work_objects(s, inp.video_id)
    plan = await env.run(acts.probing.plan_encoding, EncodingPlanInput(inp.video_id, probe, [180]))
    assert [(round(c.start, 3), round(c.end, 3)) for c in plan.chunks] == [
        (0, 2.5),
        (2.5, 5),
        (5, 6),
        (6, 7.5),
        (7.5, 10),
        (10, 12),
    ]

    acts.files.storage.delete(keys.keyframes_key(inp.video_id))
    plan = await env.run(acts.probing.plan_encoding, EncodingPlanInput(inp.video_id, probe, [180]))
    assert [(c.start, c.end) for c in plan.chunks] == [
        (0, 2),
        (2, 4),
        (4, 6),
        (6, 8),
        (8, 10),
        (10, 12),
    ]


# --- isolation: a rendition that cannot be made ---------------------------------------------


class UnwritableRendition(EncodeActivities):
    """The real activities, except that 360p's output of every chunk is a path no encoder can
    write (in a folder that does not exist): that rendition really fails in each chunk, in
    real ffmpeg."""

    def chunk_specs(self, inp: ChunkInput, out_dir: Path) -> list[RenditionSpec]:
        return [
            dataclasses.replace(spec, dst=out_dir / "missing" / "360p.mp4")
            if spec.height == 360
            else spec
            for spec in super().chunk_specs(inp, out_dir)
        ]


async def test_rendition_failing_in_every_chunk_leaves_the_others(client, settings, clips):
    s = chunked(settings)
    clip = media_clips.make_clip(
        clips / "two-chunks.mp4", width=854, height=480, seconds=4, fps=FPS, speech=None, tone=True
    )
    acts = VideoActivitySet.from_settings(s)
    acts.encoding = UnwritableRendition(s, acts.files)
    async with video_workers(client, s, acts=acts):
        inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
        handle = await start_video_job(client, s, inp)
        status: VideoStatus = await handle.result()
    assert status.state == JobState.READY_WITH_ERRORS, status.error
    assert [r.name for r in status.renditions] == ["480p"]
    steps = {step.name: step for step in status.steps}
    assert steps["rendition-360p"].state == StepStatus.FAILED
    assert re.match(r"chunk \d: ffmpeg exited", steps["rendition-360p"].last_error)
    for name in ("rendition-480p", "encode", "package", "storyboard", "hls"):
        assert steps[name].state == StepStatus.DONE, (name, steps[name])
    assert "rendition-360p" in status.error
    row = get_video(get_engine(s), inp.video_id)
    assert row["status"] == JobState.READY_WITH_ERRORS
    assert set(row["errors"]) == {"rendition-360p"}
    assert [r["name"] for r in row["renditions"]] == ["480p"]
    storage = open_storage(s)
    master = storage.read_bytes(row["hls_key"]).decode()
    assert playlist_uris(master) == ["480p/index.m3u8"]
    assert storage.exists(row["storyboard_key"])
    assert not storage.exists(keys.rendition_key(inp.video_id, "360p"))
    assert work_objects(s, inp.video_id) == []


# --- a worker killed mid-chunk, on hosts that share nothing but S3 ---------------------------


def completed_activities(history) -> set[str]:
    return {
        activity.activity_id
        for activity, _event in activity_events(
            history, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        )
    }


def media_host_env(s: Settings, data_dir: Path, tmp: Path) -> dict[str, str]:
    """A media host configured only by its environment: its own data dir and scratch disk;
    files reach it only through the S3 store."""
    return {
        **environ_without_spool(),
        **spool_variables(
            temporal_address=s.temporal_address,
            data_dir=data_dir,
            queue_media=s.queue_media,
            storage_url=s.storage_url,
            s3_endpoint_url=s.s3_endpoint_url,
            s3_region=s.s3_region,
            s3_access_key_id=s.s3_access_key_id,
            s3_secret_access_key=s.s3_secret_access_key.get_secret_value(),
            log_level="WARNING",
        ),
        "TMPDIR": str(tmp),
        "HF_HUB_OFFLINE": "1",
    }


async def test_chunk_killed_mid_encode_is_retried_alone(
    client, settings, clips, tmp_path, s3_settings_factory
):
    media_queue = f"{settings.queue_pipeline}-media"
    s = s3_settings_factory(
        base=chunked(settings, queue_media=media_queue, hls_segment_seconds=4.0, chunk_seconds=4.0)
    )
    clip = media_clips.make_clip(
        clips / "sixteen.mp4",
        width=320,
        height=180,
        seconds=16,
        fps=FPS,
        speech=None,
        tone=True,
        pattern="testsrc2",
    )
    host_tmp = tmp_path / "host-a-tmp"
    host_tmp.mkdir()
    # Host A reads its inputs at their own pace (a 4 s chunk takes at least 4 s) and runs one
    # activity at a time: it finishes a chunk, is caught in the middle of the next one, and
    # is killed there.
    host_a = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.paced_worker",
            "--queue",
            "media",
            "--max-concurrent-activities",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env=media_host_env(s, tmp_path / "host-a", host_tmp),
    )
    try:
        ready = await asyncio.to_thread(host_a.stdout.readline)
        assert ready.startswith(b"worker ready"), ready
        async with video_workers(client, s):
            inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
            handle = await start_video_job(client, s, inp)

            async def one_done_next_running() -> tuple[set[str], list[str]] | None:
                done = {
                    a
                    for a in completed_activities(await handle.fetch_history())
                    if a.startswith("encode-")
                }
                running = await started_chunks(handle)
                return (done, running) if done and running else None

            done_on_a, (victim,) = await eventually(
                one_done_next_running, "host A to finish a chunk and start the next"
            )
            host_a.send_signal(signal.SIGKILL)
            host_a.wait()
            await eventually(
                lambda: ffmpeg_processes(str(host_tmp)) == [], "host A's ffmpeg to die with it"
            )
            # Host B (this process, unpaced) takes the chunks nobody started, the audio, the
            # poster, and the killed chunk once its heartbeat has timed out.
            async with Worker(
                client,
                task_queue=media_queue,
                activities=VideoActivitySet.from_settings(s).media_activities(),
                max_heartbeat_throttle_interval=timedelta(seconds=1),
            ):
                status: VideoStatus = await asyncio.wait_for(handle.result(), 300)
    finally:
        if host_a.poll() is None:
            host_a.kill()
            host_a.wait()
    assert status.state == JobState.READY, status.error
    attempts = await attempts_by_activity(handle)
    chunks = {a: n for a, n in attempts.items() if a.startswith("encode-")}
    assert sorted(chunks) == [f"encode-0000{i}" for i in range(4)]
    assert chunks[victim] == [2]
    assert all(n == [1] for a, n in chunks.items() if a != victim), chunks
    assert all(chunks[a] == [1] for a in done_on_a)  # finished on A: never done again
    local = tmp_path / "180p.mp4"
    open_storage(s).get_to(status.renditions[0].key, local)
    frames, height, _ = await decoded_video(str(local))
    assert (frames, height) == (16 * FPS, 180)
    assert work_objects(s, inp.video_id) == []


# --- the order a media host takes a job's tasks in ------------------------------------------


def test_encode_priorities_put_long_work_first():
    """Long chunks before short ones; a clip's audio track is a short task, a film's (an
    hour of AAC) a long one."""
    assert (
        policies.encode_priority(30, 30)
        == policies.encode_priority(24, 30)
        == policies.EARLY_ENCODE
    )
    assert policies.encode_priority(20, 30) == policies.LATE_ENCODE
    assert policies.audio_priority(60, 8.3) == policies.LATE_ENCODE
    assert policies.audio_priority(3600, 30) == policies.EARLY_ENCODE
    assert policies.EARLY_ENCODE.priority_key < policies.LATE_ENCODE.priority_key


async def test_a_media_host_takes_long_chunks_first_and_short_ones_last(client, settings, clips):
    """With a job's chunks, audio track and poster all waiting, a media host takes the poster
    (a short step that unblocks a job) first, then the long chunks, and the short chunk and
    the (short) audio track last: spread over several hosts, the last tasks to start are the
    shortest, so the hosts end together."""
    # A job that plays early takes its first chunks and audio first (tests/test_playable.py).
    s = chunked(settings, queue_media=f"{settings.queue_pipeline}-media", playable_rung=0)
    # 2 s chunks of a 5 s clip: the last one is 1 s.
    clip = media_clips.make_clip(
        clips / "five.mp4", width=320, height=180, seconds=5, fps=FPS, speech=None, tone=True
    )
    status, taken = await tasks_taken_by_a_late_host(client, s, clip)
    assert status.state == JobState.READY, status.error
    keys_by_id = dict(taken)
    assert keys_by_id["poster"] == 0  # none given: the server's default, before any encode
    assert sorted(k for a, k in taken if a.startswith("encode-")) == [4, 4, 5]
    # 0 is the default (3): taken in key order, whatever order they were scheduled in.
    assert [k or 3 for _a, k in taken] == sorted(k or 3 for _a, k in taken), taken
    assert sorted(taken[-2:]) == [("audio", 5), ("encode-00002", 5)]


async def test_idle_media_slots_are_handed_long_chunks_not_short_ones(client, settings, clips):
    """A media host already polling with free slots is handed whatever task reaches the server
    first, priority or not: the job's short chunk and (short) audio track are scheduled a
    workflow task after its long chunks, so they are still the last to start."""
    media_queue = f"{settings.queue_pipeline}-media"
    s = chunked(settings, queue_media=media_queue, playable_rung=0)
    clip = media_clips.make_clip(
        clips / "five-idle.mp4", width=320, height=180, seconds=5, fps=FPS, speech=None, tone=True
    )
    order = StartOrder()
    async with (
        video_workers(client, s),
        Worker(
            client,
            task_queue=media_queue,
            activities=VideoActivitySet.from_settings(s).media_activities(),
            max_concurrent_activities=2,
            interceptors=[order],
        ),
    ):
        inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
        handle = await start_video_job(client, s, inp)
        status: VideoStatus = await asyncio.wait_for(handle.result(), 300)
    assert status.state == JobState.READY, status.error
    encodes = [a for a in order.started if a.startswith(("encode-", "audio", "poster"))]
    assert sorted(encodes) == ["audio", "encode-00000", "encode-00001", "encode-00002", "poster"]
    assert sorted(encodes[-2:]) == ["audio", "encode-00002"], encodes


# --- progress while running, then a cancel ------------------------------------------------


async def rendition_percents(client, job_id: str) -> dict[str, float]:
    """Each rendition's percent in the job's status JSON (as ``starter.py status`` shows)."""
    steps = (await job_view(client, job_id)).model_dump(mode="json")["steps"]
    return {
        step["name"]: step["percent"] or 0.0
        for step in steps
        if step["name"].startswith("rendition-")
    }


async def test_progress_rises_per_rendition_then_cancel_stops_every_ffmpeg(
    client, settings, clips, own_scratch, monkeypatch
):
    monkeypatch.setattr(tools, "INPUT_OPTIONS", media_clips.pace_inputs())
    media_queue = f"{settings.queue_pipeline}-media"
    s = chunked(settings, queue_media=media_queue)
    clip = media_clips.make_clip(
        clips / "twelve.mp4",
        width=854,
        height=480,
        seconds=12,
        fps=FPS,
        speech=None,
        tone=True,
        pattern="testsrc2",
    )
    # Two media slots: chunks (2 s each, paced) are done two at a time, so the job is still
    # encoding after its first chunks are stored.
    async with video_workers(client, s, media_slots=2):
        inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
        handle = await start_video_job(client, s, inp)

        async def moving_before_any_chunk_is_done() -> dict[str, float] | None:
            # A paced 2 s chunk heartbeats its percent every second: progress shows before
            # the first chunk ends, from the running chunks' heartbeats alone.
            percents = await rendition_percents(client, handle.id)
            done = completed_activities(await handle.fetch_history())
            if any(name.startswith("encode-") for name in done):
                return None
            return percents if percents and min(percents.values()) > 0 else None

        first = await eventually(
            moving_before_any_chunk_is_done, "every rendition to show progress from running chunks"
        )
        assert set(first) == {"rendition-480p", "rendition-360p"}

        async def risen() -> dict[str, float] | None:
            percents = await rendition_percents(client, handle.id)
            rose = all(percents[name] > first[name] for name in first)
            return percents if rose and work_objects(s, inp.video_id) else None

        later = await eventually(risen, "every rendition's progress to rise with chunks stored")
        assert all(0 < later[name] < 100 for name in later), later
        assert ffmpeg_processes(own_scratch)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        # The workflow waited for each chunk to acknowledge the cancel, which each did only
        # after killing and reaping its ffmpeg.
        assert ffmpeg_processes(own_scratch) == []
        status = await handle.query("status", result_type=VideoStatus)
    assert status.state == JobState.CANCELLED
    steps = {step.name: step.state for step in status.steps}
    assert steps["rendition-480p"] == steps["rendition-360p"] == StepStatus.CANCELLED
    assert work_objects(s, inp.video_id) == []
    assert get_video(get_engine(s), inp.video_id)["status"] == JobState.CANCELLED
