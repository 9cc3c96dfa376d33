"""Playable within seconds (issue 21): a job publishes one rendition's chunks as a growing HLS
playlist, in order, while the rest is still encoding; the status says when and where, the
owner hears `video.playable` once, and the full ladder replaces it when the job is ready.

Real Temporal dev server, worker, ffmpeg and API. The later chunks are held at an explicit
gate (the encode waits, heartbeating, until the test opens it), so "before it is ready" is a
state the test holds, not a race.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError

from activities.video import EncodeActivities, VideoActivitySet
from spool.db import get_engine
from spool.db.video import get_video
from spool.ingest import ingest_video, start_video_job
from spool.media import live
from spool.models import (
    AudioTrackInput,
    AudioTrackResult,
    CaptionsState,
    ChunkInput,
    ChunkResult,
    JobState,
    StepStatus,
)
from spool.models.chunks import plan_chunks, split_first_chunk
from spool.storage import keys, open_storage
from tests.support import media_clips
from tests.support.api import AUTH
from tests.support.hls_rules import violations
from tests.support.live_api import live_api
from tests.support.media_checks import ffprobe_json, playlist_uris
from tests.support.video import chunked, tasks_taken_by_a_late_host, video_workers
from tests.support.waiting import eventually
from tests.support.webhook_senders import Receiver, webhook_settings

pytestmark = pytest.mark.e2e

FPS = 15
SECONDS = 12
HELD_FROM = 2  # chunks from this index wait at the gate


class Gated(EncodeActivities):
    """The real encodes, some of which wait (heartbeating) for ``gate``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()

    async def held(self) -> None:
        while not self.gate.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.2)

    @classmethod
    def activities(cls, settings) -> tuple[VideoActivitySet, asyncio.Event]:
        """A job's activities with these encodes, and their gate."""
        acts = VideoActivitySet.from_settings(settings)
        acts.encoding = gated = cls(settings, acts.files)
        return acts, gated.gate


class HeldEncodes(Gated):
    """Chunks from HELD_FROM on wait for the gate."""

    @activity.defn(name="video.encode_chunk")
    async def encode_chunk(self, inp: ChunkInput) -> ChunkResult:
        if inp.chunk.index >= HELD_FROM:
            await self.held()
        return await super().encode_chunk(inp)


class HeldAudioTrack(Gated):
    """The whole audio track waits for the gate."""

    @activity.defn(name="video.encode_audio")
    async def encode_audio(self, inp: AudioTrackInput) -> AudioTrackResult:
        await self.held()
        return await super().encode_audio(inp)


def with_sound_in(clip: Path, path: Path, codec: str) -> Path:
    """``clip``'s pictures copied, its sound encoded with ``codec``, in Matroska."""
    subprocess.run(
        [*media_clips.FFMPEG, "-i", str(clip), "-c:v", "copy", "-c:a", codec, str(path)],
        check=True,
        capture_output=True,
    )
    return path


def decoder_config(url: str) -> dict:
    """What a decoder is configured with from an init segment: codec, rate, channels and
    the AudioSpecificConfig's digest."""
    got = ffprobe_json(
        url,
        "-show_data_hash",
        "sha256",
        "-show_entries",
        "stream=codec_name,profile,sample_rate,channels,extradata_hash",
    )
    return got["streams"][0]


@contextlib.asynccontextmanager
async def serving(client, settings, acts: VideoActivitySet, release: asyncio.Event | None = None):
    """The job's workers, the API and an HTTP client of it: (API base URL, client).
    ``release`` is set on the way out, so a failed check frees the work it holds."""
    async with (
        video_workers(client, settings, acts=acts),
        live_api(settings, client) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        try:
            yield base, http
        finally:
            if release is not None:
                release.set()


async def once_playable(http: httpx.AsyncClient, video_id: str, what: str) -> dict:
    """The job's status once it first has a playable URL."""

    async def playable() -> dict | None:
        view = await job_status(http, video_id)
        return view if view["playable_url"] else None

    return await eventually(playable, what, within=120)


async def job_status(http: httpx.AsyncClient, video_id: str) -> dict:
    got = await http.get(f"/v1/videos/{video_id}", headers=AUTH)
    assert got.status_code == 200, got.text
    return got.json()


def test_first_chunk_is_split_so_the_first_pictures_come_soon():
    """A long video's first chunk becomes chunks of 1, 2, 4… segments; short clips keep
    theirs; the chunks still cover the video exactly, in order."""
    ten_minutes = split_first_chunk(plan_chunks(600, chunk_seconds=30, segment_seconds=4), 4)
    assert [(c.start, c.end) for c in ten_minutes[:4]] == [(0, 4), (4, 12), (12, 28), (28, 56)]
    assert [c.index for c in ten_minutes] == list(range(len(ten_minutes)))
    assert all(a.end == b.start for a, b in zip(ten_minutes, ten_minutes[1:], strict=False))
    assert ten_minutes[-1].end == 600
    clip = plan_chunks(60, chunk_seconds=30, segment_seconds=4)  # 8 s chunks: 2 segments
    assert split_first_chunk(clip, 4) == clip


def test_live_playlist_appends_chunks_once_and_ends_when_complete():
    """A retried publish finds its chunks already in; the playlist is EVENT, each chunk under
    its own init segment, ended only once complete."""
    from spool.models import LiveChunk, LiveSegment

    first = LiveChunk(
        "c00000-init.mp4", [LiveSegment("c00000-seg-00001.m4s", 2.0, 100)], config="a"
    )
    second = LiveChunk(
        "c00001-init.mp4",
        [LiveSegment("c00001-seg-00001.m4s", 2.0, 90), LiveSegment("c00001-seg-00002.m4s", 1.5)],
        config="a",
    )
    other = LiveChunk("c00002-init.mp4", [LiveSegment("c00002-seg-00001.m4s", 2.0)], config="b")
    entries = live.appended(live.appended([], [first]), [first, second])
    assert live.reach(entries) == 5.5
    text = live.media_playlist(entries, target=2, complete=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text
    # Alike chunks share the first chunk's init segment.
    assert text.count("#EXT-X-MAP") == 1 and "#EXT-X-DISCONTINUITY" not in text
    again = live.appended(live.read_playlist(text), [second], previous_config="a")
    assert [s.uri for _i, s in again] == [s.uri for _i, s in entries]
    grown = live.appended(again, [other], previous_config="a")
    ended = live.media_playlist(grown, target=2, complete=True)
    assert ended.endswith("#EXT-X-ENDLIST\n")
    # A chunk configured otherwise starts its own, after a discontinuity.
    assert ended.count("#EXT-X-MAP") == 2 and ended.count("#EXT-X-DISCONTINUITY") == 1
    assert live.read_playlist(ended) == grown


async def test_a_media_host_takes_the_first_chunks_and_the_audio_first(client, settings, clips):
    """With a job's media tasks all waiting: a host takes the split first chunks and the
    audio track before anything else (its first pictures wait for them), then the
    poster, then the rest longest first."""
    s = chunked(settings, queue_media=f"{settings.queue_pipeline}-media", chunk_seconds=24.0)
    clip = media_clips.make_clip(
        clips / "first.mp4", width=320, height=180, seconds=SECONDS, fps=FPS, speech=None, tone=True
    )
    status, taken = await tasks_taken_by_a_late_host(client, s, clip)
    assert status.state == JobState.READY, status.error
    first = sorted(taken[:3])
    assert first == [("audio", 2), ("encode-00000", 2), ("encode-00001", 2)], taken
    assert taken[3] == ("poster", 0) and taken[4][0] == "encode-00002", taken


async def test_the_first_chunk_goes_first_and_the_captions_once_it_plays(client, settings, clips):
    """With media hosts idle when the job's tasks come: the first chunk (with the poster)
    is scheduled before any other media task, which come a timer later, and the captions
    child (Whisper, at a higher CPU priority than the encodes) starts only once the job is
    playable; the job still ends ready with its captions."""
    if media_clips.tools_missing():
        pytest.fail(media_clips.tools_missing())
    s = chunked(settings, chunk_seconds=24.0, playable_rung=360)
    clip = media_clips.make_clip(
        clips / "first-talk.mp4", width=320, height=180, seconds=SECONDS, fps=FPS
    )
    async with video_workers(client, s):
        inp = ingest_video(s, clip, owner_id="owner-1")
        handle = await start_video_job(client, s, inp)
        final = await asyncio.wait_for(handle.result(), 300)
        history = await handle.fetch_history()
    assert final.state == JobState.READY, final.error
    assert final.captions_state == CaptionsState.AVAILABLE, final.error
    scheduled: dict[int, str] = {}
    order: list[str] = []  # activities scheduled, timers fired, activities done, the child
    urgent: dict[str, bool] = {}  # each chunk's encode: at the worker's own CPU priority?
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_id
            order.append(f"scheduled {attrs.activity_id}")
            if attrs.activity_id.startswith("encode-"):
                (chunk,) = await client.data_converter.decode(attrs.input.payloads)
                urgent[attrs.activity_id] = chunk["urgent"]
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes.scheduled_event_id
            order.append(f"done {scheduled[done]}")
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            order.append("timer")
        elif event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            order.append("captions")
    media = [e for e in order if e.startswith("scheduled ") and e.split()[1] != "plan"]
    media = [e for e in media if e.split()[1].startswith(("encode-", "audio", "poster"))]
    first_timer = order.index("timer")
    before = {e.split()[1] for e in media if order.index(e) < first_timer}
    assert before == {"encode-00000", "poster"}, order
    assert order.index("captions") > order.index("done playable"), order
    # The split first chunks (2 s + 4 s) are waited for; the rest is bulk.
    assert urgent == {"encode-00000": True, "encode-00001": True, "encode-00002": False}


async def test_job_plays_its_first_chunks_while_the_rest_is_held(client, settings, clips):
    """With every chunk from the third held: the job is processing and playable; the live
    master names one rendition and the audio; the variant holds exactly the chunks done in
    order (EVENT, not ended) and decodes over HTTP; `video.playable` arrives once. Released,
    the job is ready, the live playlist is ended and whole, and the status's playable URL is
    the full ladder."""
    if media_clips.tools_missing():
        pytest.fail(media_clips.tools_missing())
    # Chunks of 3 segments of 2 s: the first is split into 2 s + 4 s, so 3 chunks in all.
    s = chunked(webhook_settings(settings), chunk_seconds=24.0, playable_rung=360)
    clip = media_clips.make_clip(
        clips / "playable.mp4",
        width=854,
        height=480,
        seconds=SECONDS,
        fps=FPS,
        speech=None,
        tone=True,
    )
    acts, gate = HeldEncodes.activities(s)
    with Receiver().running() as receiver:
        async with serving(client, s, acts, release=gate) as (base, http):
            inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
            inp.callback_url = receiver.url
            handle = await start_video_job(client, s, inp)
            video_id = inp.video_id
            view = await once_playable(http, video_id, "the job is playable")
            assert view["state"] == "processing" and view["playable_at"]
            assert view["playable_url"].endswith(f"/v1/videos/{video_id}/hls/live/master.m3u8")
            assert view["hls_url"] is None
            hls = f"{base}/v1/videos/{video_id}/hls/live"
            master = (await http.get(f"{hls}/master.m3u8")).text
            assert playlist_uris(master) == ["360p/index.m3u8"]
            assert 'URI="audio/index.m3u8"' in master
            # The upload's own AAC, copied: the clip's tone is mono, and the master says so.
            assert 'CHANNELS="1"' in master

            async def reaching(seconds: float) -> str | None:
                text = (await http.get(f"{hls}/360p/index.m3u8")).text
                return text if sum(map(float, _extinf(text))) >= seconds - 0.01 else None

            # Chunks 0 and 1 (2 s + 4 s) are published, in order; chunk 2 is held.
            variant = await eventually(lambda: reaching(6.0), "chunks 0 and 1 live", within=120)
            assert "#EXT-X-PLAYLIST-TYPE:EVENT" in variant and "#EXT-X-ENDLIST" not in variant
            assert all(round(float(x)) <= 2 for x in _extinf(variant))
            assert "#EXT-X-TARGETDURATION:2" in variant
            assert abs(sum(map(float, _extinf(variant))) - 6.0) < 0.01, variant
            assert variant.count("#EXT-X-MAP") == 1
            # ffprobe would wait for a live playlist to grow: it reads a copy, ended.
            snapshot = ended_copy(variant, f"{hls}/360p", clips / "live-360p.m3u8")
            decoded = await asyncio.to_thread(
                ffprobe_json,
                snapshot,
                "-protocol_whitelist",
                "file,http,tcp",
                "-select_streams",
                "v:0",
                "-count_frames",
                "-show_entries",
                "stream=nb_read_frames,height",
            )
            assert decoded["streams"][0]["nb_read_frames"] == str(6 * FPS)
            assert decoded["streams"][0]["height"] == 360
            audio = (await http.get(f"{hls}/audio/index.m3u8")).text
            assert "#EXT-X-ENDLIST" not in audio and sum(map(float, _extinf(audio))) < SECONDS

            gate.set()
            final = await asyncio.wait_for(handle.result(), 300)
            assert final.state == JobState.READY, final.error
            steps = {step.name: step for step in final.steps}
            assert steps["playable"].state == StepStatus.DONE
            view = await job_status(http, video_id)
            assert view["playable_url"] == view["hls_url"] and view["hls_url"]
            ended = (await http.get(f"{hls}/360p/index.m3u8")).text
            assert ended.endswith("#EXT-X-ENDLIST\n") and ended.startswith(variant.rstrip("\n"))
            assert abs(sum(map(float, _extinf(ended))) - SECONDS) < 0.01
            audio = (await http.get(f"{hls}/audio/index.m3u8")).text
            assert audio.endswith("#EXT-X-ENDLIST\n")

            def read(uri: str) -> bytes:
                got = httpx.get(f"{hls}/{uri}")
                assert got.status_code == 200, uri
                return got.content

            assert await asyncio.to_thread(violations, "master.m3u8", read) == []
        row = get_video(get_engine(s), video_id)
        assert row["playable_at"] == view["playable_at"]
        await eventually(lambda: len(receiver.accepted()) >= 2, "two events", within=30)
        events = receiver.accepted()
    assert sorted(e["type"] for e in events) == ["video.playable", "video.ready"]
    played = next(e for e in events if e["type"] == "video.playable")
    assert played["data"]["video_id"] == video_id
    assert open_storage(s).exists(keys.live_master_key(video_id))


@pytest.mark.parametrize("codec", ["libopus", "pcm_s16le"])
async def test_an_upload_without_aac_sound_plays_before_its_whole_track_is_made(
    client, settings, clips, codec
):
    """Opus (or PCM) sound in Matroska, the whole AAC track held at a gate: the job plays,
    its live audio the sound's first part encoded by the publishes. Released, the job is
    ready and the ended live audio is the whole track's cut, the segments listed before it
    unchanged."""
    if media_clips.tools_missing():
        pytest.fail(media_clips.tools_missing())
    s = chunked(settings, chunk_seconds=24.0, playable_rung=360)
    mp4 = media_clips.make_clip(
        clips / f"other-{codec}.mp4", width=320, height=180, seconds=SECONDS, fps=FPS, tone=True
    )
    clip = with_sound_in(mp4, clips / f"other-{codec}.mkv", codec)
    acts, gate = HeldAudioTrack.activities(s)
    storage = open_storage(s)
    async with serving(client, s, acts, release=gate) as (base, http):
        inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
        handle = await start_video_job(client, s, inp)
        hls = f"{base}/v1/videos/{inp.video_id}/hls/live"
        view = await once_playable(http, inp.video_id, "the job plays without its whole track")
        assert view["state"] == "processing"
        master = (await http.get(f"{hls}/master.m3u8")).text
        # Encoded as the whole track is: stereo, whatever the upload's sound.
        assert 'URI="audio/index.m3u8"' in master and 'CHANNELS="2"' in master
        early = (await http.get(f"{hls}/audio/index.m3u8")).text
        assert "#EXT-X-ENDLIST" not in early and 0 < sum(map(float, _extinf(early))) < SECONDS
        listed = [line for line in early.splitlines() if line and not line.startswith("#")]
        before = {
            uri: hashlib.sha256((await http.get(f"{hls}/audio/{uri}")).content).hexdigest()
            for uri in listed
        }
        config = await asyncio.to_thread(decoder_config, f"{hls}/audio/init.mp4")
        assert not storage.exists(keys.audio_track_key(inp.video_id))  # still held

        gate.set()
        final = await asyncio.wait_for(handle.result(), 300)
        assert final.state == JobState.READY, final.error
        ended = (await http.get(f"{hls}/audio/index.m3u8")).text
        assert ended.endswith("#EXT-X-ENDLIST\n")
        assert abs(sum(map(float, _extinf(ended))) - SECONDS) < 0.2, ended
        after = {
            uri: hashlib.sha256((await http.get(f"{hls}/audio/{uri}")).content).hexdigest()
            for uri in before
        }
        assert after == before  # a player that fetched them early heard the same sound
        # The init segment's decoder configuration too (only its bit rate fields differ).
        assert await asyncio.to_thread(decoder_config, f"{hls}/audio/init.mp4") == config
        ended_copy(ended, f"{hls}/audio", clips / f"live-audio-{codec}.m3u8")
        decoded = await asyncio.to_thread(
            ffprobe_json,
            clips / f"live-audio-{codec}.m3u8",
            "-protocol_whitelist",
            "file,http,tcp",
            "-count_packets",
            "-show_entries",
            "stream=codec_name,sample_rate,nb_read_packets",
        )
    (stream,) = decoded["streams"]
    assert stream["codec_name"] == "aac"
    heard = int(stream["nb_read_packets"]) * 1024 / int(stream["sample_rate"])
    assert abs(heard - SECONDS) < 0.3, stream


async def test_a_cancelled_job_leaves_no_live_playlist(client, settings, clips):
    """Cancelled while its later chunks are held, after it became playable: the job ends
    cancelled, nothing remains under its live playlists, and nothing is offered to play."""
    if media_clips.tools_missing():
        pytest.fail(media_clips.tools_missing())
    s = chunked(settings, chunk_seconds=24.0, playable_rung=360)
    clip = media_clips.make_clip(
        clips / "cancelled.mp4", width=320, height=180, seconds=SECONDS, fps=FPS, tone=True
    )
    acts, _gate = HeldEncodes.activities(s)  # held for good: the job is cancelled
    storage = open_storage(s)
    async with serving(client, s, acts) as (_base, http):
        inp = ingest_video(s, clip, owner_id="owner-1", captions=False)
        handle = await start_video_job(client, s, inp)
        live_master = keys.live_master_key(inp.video_id)
        await eventually(lambda: storage.exists(live_master), "the job is playable", within=120)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 300)
        view = await job_status(http, inp.video_id)
    assert view["state"] == "cancelled" and view["playable_url"] is None
    assert storage.list_prefix(keys.live_key(inp.video_id, "")) == []


def ended_copy(playlist: str, base: str, path: Path) -> Path:
    """A live playlist as it is now, its URIs absolute and ended, written to ``path``."""
    lines = []
    for line in playlist.splitlines():
        if line.startswith('#EXT-X-MAP:URI="'):
            line = f'#EXT-X-MAP:URI="{base}/{line.split(chr(34))[1]}"'
        elif line and not line.startswith("#"):
            line = f"{base}/{line}"
        lines.append(line)
    path.write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    return path


def _extinf(playlist: str) -> list[str]:
    return [
        line.removeprefix("#EXTINF:").split(",")[0]
        for line in playlist.splitlines()
        if line.startswith("#EXTINF:")
    ]


@pytest.mark.unit
async def test_an_urgent_chunk_encodes_at_the_workers_own_priority(tmp_path, monkeypatch):
    """Bulk chunks run ffmpeg below the worker's CPU priority (SPOOL_MEDIA_NICE); a chunk a
    viewer waits for runs at the worker's own."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.video import encoding
    from spool.config import Settings
    from spool.media import tools
    from spool.models import ChunkPlan, RenditionPlan

    s = Settings(data_dir=tmp_path / "data", media_nice=10)
    acts = VideoActivitySet.from_settings(s)
    source = tmp_path / "source"
    source.write_bytes(b"not read: the encode is replaced")
    await acts.files.put_file(source, "videos/v1/source")
    niceness: list[int] = []

    async def encode_chunk(*_args, limits: tools.Limits, **_kw):
        niceness.append(limits.nice)
        raise tools.MediaError("stopped here")

    monkeypatch.setattr(encoding.chunks, "encode_chunk", encode_chunk)
    for urgent in (True, False):
        inp = ChunkInput(
            "v1",
            "videos/v1/source",
            ChunkPlan(0, 0.0, 4.0),
            [RenditionPlan("360p", 360, 600, 22)],
            30.0,
            4.0,
            urgent=urgent,
        )
        with pytest.raises(ApplicationError, match="stopped here"):
            await ActivityEnvironment().run(acts.encoding.encode_chunk, inp)
    assert niceness == [0, 10]


@pytest.mark.unit
async def test_a_publish_encodes_the_sounds_first_part_at_the_workers_own_priority(
    tmp_path, monkeypatch
):
    """The first part of a sound that is not AAC is encoded by the publish a viewer waits
    for: at the worker's own CPU priority, not the bulk encodes' (SPOOL_MEDIA_NICE), a
    little past the pictures, from the upload read no further."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.video import packaging
    from spool.config import Settings
    from spool.media import tools
    from spool.models import LiveChunk, LivePublishInput, LiveSegment

    s = Settings(data_dir=tmp_path / "data", media_nice=10)
    acts = VideoActivitySet.from_settings(s)
    source = tmp_path / "source"
    source.write_bytes(b"not read: the encode is replaced")
    await acts.files.put_file(source, "videos/v1/source")
    asked: list[tuple[int, float | None, bool]] = []

    async def encode_audio(*_args, limits: tools.Limits, duration, part, **_kw):
        asked.append((limits.nice, duration, part))
        raise tools.MediaError("stopped here")

    monkeypatch.setattr(packaging, "encode_audio", encode_audio)
    inp = LivePublishInput(
        video_id="v1",
        rendition="360p",
        chunks=[LiveChunk("c00000-init.mp4", [LiveSegment("c00000-00001.m4s", 4.0)])],
        first_index=0,
        ceiling_kbps=600,
        frame_rate=30.0,
        segment_seconds=4.0,
        source_key="videos/v1/source",
        encode_kbps=128,
        duration=600.0,
    )
    with pytest.raises(ApplicationError, match="stopped here"):
        await ActivityEnvironment().run(acts.live.publish_live, inp)
    assert asked == [(0, 12.0, True)]


@pytest.mark.unit
def test_the_live_audio_is_cut_a_little_past_the_pictures_then_twice_as_far():
    """The first publish reads seconds of a long upload, not all of it; a stored part cut
    serves a publish only as far as its whole segments reach; a whole cut serves them all."""
    from spool.models import LiveAudio, LiveSegment

    assert live.audio_cut_until(4.0, 4.0, None) == 12.0
    assert live.audio_cut_until(12.0, 4.0, 12.0) == 24.0
    assert live.audio_cut_until(60.0, 4.0, 24.0) == 68.0
    cut = [(None, LiveSegment(f"seg-{n}.m4s", 4.0)) for n in range(3)]  # read to 12 s
    part = LiveAudio(cut_until=12.0)
    assert live.audio_covers(cut, part, 8.0, complete=False)
    assert not live.audio_covers(cut, part, 8.5, complete=False)  # its last may end early
    assert not live.audio_covers(cut, part, 4.0, complete=True)
    assert live.audio_covers(cut, LiveAudio(), 100.0, complete=True)


async def test_the_uploads_own_aac_is_cut_from_any_container_it_came_in(clips):
    """The live audio copied from an upload in Matroska (or MPEG-TS) with AAC sound: read
    with the upload's whitelists, in part (only its first seconds), then whole."""
    import subprocess

    from spool.media import tools

    if media_clips.tools_missing():
        pytest.fail(media_clips.tools_missing())
    mp4 = media_clips.make_clip(clips / "aac.mp4", width=320, height=180, seconds=SECONDS)
    for suffix in ("mkv", "ts"):
        upload = clips / f"aac.{suffix}"
        subprocess.run(
            [*media_clips.FFMPEG, "-i", str(mp4), "-c", "copy", str(upload)],
            check=True,
            capture_output=True,
        )

        async def cut(name: str, until: float, upload: Path = upload):
            out = clips / f"{name}-{upload.suffix}"
            audio, listed = await live.cut_audio(
                upload,
                out,
                segment_seconds=2.0,
                lead=0.0,
                limits=tools.Limits(),
                untrusted=True,
                until=until,
            )
            # What it returns is what it stored for the later publishes to read.
            assert listed == live.read_playlist((out / live.AUDIO_CUT).read_text())
            return audio, sum(segment.seconds for _init, segment in listed)

        part, seconds = await cut("part", 5.0)
        assert part.cut_until == 5.0 and 4.0 <= seconds <= 5.1
        whole, seconds = await cut("whole", SECONDS + 10.0)
        assert whole.cut_until is None and abs(seconds - SECONDS) < 0.1
