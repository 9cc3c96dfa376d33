"""Hostile and odd uploads (tests/support/media_corpus.py) through Spool's real activities.

Each case is stored under Spool's own key and probed by the registered ``video.probe``
activity with the settings' hardened limits. A refused case must raise a non-retryable
``InvalidVideo`` whose message names the problem; an accepted one must report the right probe
values and then go through the real rendition (chunks, audio track, package), poster and audio
activities, whose outputs ffprobe confirms. Playlists must read nothing outside storage and
connect nowhere.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.video import VideoActivitySet
from bench.plain import transcode_rendition
from spool.config import Settings
from spool.media import keyframes
from spool.media import probe as media_probe
from spool.media.audio import encode_audio, extract_audio_16k_mono, wav_args
from spool.media.chunks import RenditionSpec, encode_chunk
from spool.media.poster import extract_poster
from spool.media.tools import Limits, MediaError, run_tool
from spool.models.captions import ExtractAudioInput
from spool.models.chunks import ChunkPlan
from spool.models.common import INVALID_VIDEO
from spool.models.video import (
    PosterInput,
    ProbeInput,
    plan_rungs,
)
from spool.storage import keys
from tests.support import media_clips, media_corpus
from tests.support.media_checks import ffprobe_json
from tests.support.media_corpus import CASES, Case, Context
from tests.support.renditions import make_rendition
from tests.support.services import service_missing

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
VIDEO_ID = "corpus"
OTHER_ID = "other-upload"
SOURCE = keys.source_key(VIDEO_ID)
# A rendition or WAV may differ from its source by an audio frame or a last video frame.
DURATION_SLACK = 0.35
# The probe prints only what Spool reads, whatever the upload carries.
MAX_PROBE_OUTPUT_BYTES = 16 * 1024


@pytest.fixture(scope="module")
def listener():
    """A listening socket nobody accepts on: a connection attempt completes in the kernel's
    backlog regardless, so draining it after a tool has exited sees every attempt made."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    yield sock
    sock.close()


def connections_made(sock: socket.socket) -> list[tuple[str, int]]:
    made = []
    while True:
        try:
            conn, addr = sock.accept()
        except BlockingIOError:
            return made
        conn.close()
        made.append(addr)


@pytest.fixture(scope="module")
def other_upload(clips) -> Path:
    """The valid MPEG-TS a hostile playlist would like Spool to read instead."""
    return media_corpus.make_other_file(clips / "other" / "upload.ts")


def registered(acts: VideoActivitySet, name: str):
    """The activity registered under ``name``: tests follow the registered names (which
    running histories depend on), not the Python method names."""
    for fn in acts.pipeline_activities() + acts.media_activities() + acts.captions_activities():
        defn = activity._Definition.from_callable(fn)
        if defn is not None and defn.name == name:
            return fn
    raise AssertionError(f"no activity registered as {name}")


async def run(acts: VideoActivitySet, name: str, arg):
    return await ActivityEnvironment().run(registered(acts, name), arg)


def stored_keys(acts: VideoActivitySet) -> list[str]:
    return sorted(acts.files.storage.list_prefix(keys.video_prefix(VIDEO_ID)))


def available(case: Case) -> None:
    missing = case.unavailable()
    if missing:
        service_missing(f"corpus case {case.name}: {missing}")


async def stage(
    case: Case, clips: Path, tmp_path: Path, listener: socket.socket, other_upload: Path
) -> tuple[VideoActivitySet, Path]:
    """Build the case's file and store it as an upload, with the case's limits."""
    settings = Settings(data_dir=tmp_path / "data", **case.limits)
    acts = VideoActivitySet.from_settings(settings)
    other_key = keys.source_key(OTHER_ID)
    await asyncio.to_thread(acts.files.storage.put_file, other_upload, other_key)
    workdir = clips / case.name
    workdir.mkdir(exist_ok=True)
    port = listener.getsockname()[1]
    ctx = Context(
        workdir=workdir,
        data_dir=settings.data_dir,
        other_file=settings.resolved_storage_dir / other_key,
        listen_url=f"http://127.0.0.1:{port}/",
    )
    path = await asyncio.to_thread(case.make, ctx)
    if case.check_file is not None:
        case.check_file(path)
    await asyncio.to_thread(acts.files.storage.put_file, path, SOURCE)
    return acts, path


def test_the_corpus_covers_what_it_promises():
    print("\n" + media_corpus.corpus_table())
    assert len(CASES) >= 30
    assert sum(c.refused is not None for c in CASES) >= 15
    assert sum(c.accepted is not None for c in CASES) >= 15
    assert {c.name for c in CASES if c.playlist} == {
        f"{kind}_{where}" for kind in ("hls", "ffconcat") for where in media_corpus.PLAYLIST_TARGETS
    }
    limits = {name for c in CASES for name in c.limits}
    assert {"max_upload_bytes", "max_duration_seconds", "max_width", "max_height"} <= limits


@pytest.mark.parametrize("case", [c for c in CASES if c.refused], ids=lambda c: c.name)
async def test_refused_with_a_message_that_names_the_problem(
    case, clips, tmp_path, listener, other_upload
):
    available(case)
    acts, path = await stage(case, clips, tmp_path, listener, other_upload)
    with pytest.raises(ApplicationError) as err:
        await run(acts, "video.probe", ProbeInput(VIDEO_ID, SOURCE))
    error = err.value
    print(f"\n{case.name}: {error.message}")
    assert connections_made(listener) == []
    assert error.type == INVALID_VIDEO and error.non_retryable
    assert case.refused in error.message
    # A person reads this: no scratch path, no ffmpeg log syntax.
    assert "file:" not in error.message and " @ 0x" not in error.message
    assert str(tmp_path) not in error.message and "spool-video-" not in error.message
    assert stored_keys(acts) == [SOURCE]
    if case.playlist:
        await assert_playlist_reads_nothing(acts, path, tmp_path, listener, error.message)


async def assert_playlist_reads_nothing(
    acts: VideoActivitySet, path: Path, tmp_path: Path, listener: socket.socket, message: str
) -> None:
    """ffmpeg's container whitelist refuses the playlist in the probe and in every heavy
    command, so nothing it names is read and no address it names is connected to."""
    with pytest.raises(MediaError) as err:
        await media_probe.probe(path)
    assert "Format not on whitelist" in err.value.stderr
    out = tmp_path / "out"
    out.mkdir()
    commands = [
        transcode_rendition(path, out / "r.mp4", 120, video_kbps=300),
        extract_poster(path, out / "p.jpg", 0.0),
        extract_audio_16k_mono(path, out / "a.wav"),
        encode_audio(
            path, out / "a.m4a", audio_kbps=128, limits=Limits(), on_progress=None, duration=1.0
        ),
        encode_chunk(
            path,
            ChunkPlan(0, 0.0, 1.0),
            [RenditionSpec(out / "c.mp4", 120, 300)],
            fps=15.0,
            segment_seconds=1.0,
            preset="veryfast",
            thumb_every=None,
            thumb_width=160,
            thumb_dir=None,
            limits=Limits(),
            on_progress=None,
        ),
    ]
    for command in commands:
        with pytest.raises(MediaError) as err:
            await command
        assert "Format not on whitelist" in err.value.stderr
    assert [p for p in out.iterdir() if p.stat().st_size > 0] == []
    assert connections_made(listener) == []
    passwd_line = Path("/etc/passwd").read_text().splitlines()[0]
    assert passwd_line not in message and OTHER_ID not in message


@pytest.mark.parametrize("case", [c for c in CASES if c.accepted], ids=lambda c: c.name)
async def test_accepted_and_every_output_is_right(case, clips, tmp_path, listener, other_upload):
    available(case)
    acts, path = await stage(case, clips, tmp_path, listener, other_upload)
    want = case.accepted
    probe = await run(acts, "video.probe", ProbeInput(VIDEO_ID, SOURCE))
    print(f"\n{case.name}: {probe}")
    assert (probe.width, probe.height) == (want.width, want.height)
    assert probe.has_video and probe.has_audio == want.has_audio
    assert probe.video_codec == want.video_codec
    assert abs(probe.duration - want.duration) <= 0.15, probe.duration
    if want.rotation is not None:
        assert abs(probe.rotation) == want.rotation
    overall = probe.size_bytes * 8 / probe.duration
    assert probe.size_bytes == path.stat().st_size
    assert abs(probe.bit_rate - overall) <= 0.1 * overall, (probe.bit_rate, overall)
    # Bounded output: tags, however many, are not part of what ffprobe prints for Spool.
    printed = await run_tool(media_probe.probe_args(path), Limits(timeout_seconds=120))
    assert len(printed) < MAX_PROBE_OUTPUT_BYTES
    # The adapter takes any local name: the ones an upload might carry mean nothing to it.
    assert (await media_probe.probe(path)).duration == probe.duration

    await check_rendition(acts, probe, tmp_path)
    await check_poster(acts, probe, tmp_path)
    if probe.has_audio:
        await check_audio(acts, probe, tmp_path)
    assert connections_made(listener) == []


async def fetched(acts: VideoActivitySet, key: str, dest: Path) -> Path:
    await asyncio.to_thread(acts.files.storage.get_to, key, dest)
    return dest


async def check_rendition(acts: VideoActivitySet, probe, tmp_path: Path) -> None:
    rung = plan_rungs(probe.width, probe.height)[-1]  # the cheapest one the source gets
    result = await make_rendition(acts, VIDEO_ID, SOURCE, probe, rung)
    out = await fetched(acts, result.key, tmp_path / "rendition.mp4")
    streams = ffprobe_json(out, "-show_streams")["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert len(video) == 1 and video[0]["codec_name"] == "h264", streams
    width, height = video[0]["width"], video[0]["height"]
    assert video[0]["pix_fmt"] == "yuv420p" and min(width, height) == rung
    assert width % 2 == 0 and height % 2 == 0
    assert abs(video[0]["width"] - height * probe.width / probe.height) <= 2, video[0]
    assert (result.width, result.height) == (video[0]["width"], height)
    assert bool(audio) == probe.has_audio
    if audio:
        assert audio[0]["codec_name"] == "aac" and audio[0]["channels"] == 2
    duration = float(ffprobe_json(out, "-show_format")["format"]["duration"])
    assert abs(duration - probe.duration) <= DURATION_SLACK, duration


async def check_poster(acts: VideoActivitySet, probe, tmp_path: Path) -> None:
    result = await run(
        acts, "video.extract_poster", PosterInput(VIDEO_ID, SOURCE, round(probe.duration * 0.1, 3))
    )
    poster = await fetched(acts, result.key, tmp_path / "poster.jpg")
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    [image] = ffprobe_json(poster, "-show_streams")["streams"]
    assert (image["width"], image["height"]) == (probe.width, probe.height)


async def check_audio(acts: VideoActivitySet, probe, tmp_path: Path) -> None:
    result = await run(acts, "video.extract_audio", ExtractAudioInput(VIDEO_ID, SOURCE))
    wav = await fetched(acts, result.audio_key, tmp_path / "audio.wav")
    [stream] = ffprobe_json(wav, "-show_streams")["streams"]
    assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == (
        "pcm_s16le",
        1,
        "16000",
    )
    assert abs(float(stream["duration"]) - probe.duration) <= DURATION_SLACK, stream


# --- hostile inputs cost a worker no more than their bounds -----------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.bounds], ids=lambda c: c.name)
async def test_a_hostile_upload_costs_a_worker_no_more_than_its_bounds(
    case, clips, tmp_path, listener, other_upload
):
    """The probe of each bounded case in a worker process of its own (tests/support/probe_once.py):
    refused, in its time and with its peak memory growth within the case's bounds."""
    available(case)
    _, path = await stage(case, clips, tmp_path, listener, other_upload)
    assert case.bounds is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.probe_once",
        str(path),
        str(tmp_path / "worker-data"),
        json.dumps(case.limits),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), case.bounds.seconds + 60)
    report = json.loads(out)
    print(f"\n{case.name}: {report}")
    assert report["outcome"] == "refused" and case.refused in report["message"], report
    assert report["seconds"] <= case.bounds.seconds, report
    assert report["memory_growth_bytes"] <= case.bounds.memory_bytes, report


async def test_every_decode_stops_at_the_checked_duration(clips, tmp_path, listener, other_upload):
    """The captions' audio of a file whose header says 2 s over ten minutes, made as if the
    probe had let it through: 2 s of WAV, not ten minutes. (The chunks and the AAC track are
    cut to the plan's duration by their own commands.)"""
    case = media_corpus.CASES_BY_NAME["header_claims_2s_over_10min"]
    available(case)
    acts, path = await stage(case, clips, tmp_path, listener, other_upload)
    result = await run(acts, "video.extract_audio", ExtractAudioInput(VIDEO_ID, SOURCE))
    wav = await fetched(acts, result.audio_key, tmp_path / "audio.wav")
    assert result.duration == 2.0 and wav.stat().st_size < 3 * 16000 * 2, wav.stat().st_size
    # The command itself: ``-t`` on the input and on the output.
    argv = wav_args(path, tmp_path / "a.wav", 2.0)
    assert argv.count("-t") == 2 and argv[argv.index("-t") + 1] == "2.000", argv


async def test_the_keyframe_listing_stops_at_its_bound(clips, tmp_path, listener, other_upload):
    """Read a line at a time and stopped past its bound: a stream with more packets than its
    duration allows at the frame-rate limit is refused whatever rate its header states."""
    case = media_corpus.CASES_BY_NAME["thousand_fps"]
    available(case)
    _, path = await stage(case, clips, tmp_path, listener, other_upload)
    limits = Limits(timeout_seconds=120)
    with pytest.raises(keyframes.TooManyPackets):
        await keyframes.keyframe_times(path, limits, max_packets=5000)
    # Within it, the listing: x264's keyframe every 250 frames (0.25 s), two a second kept.
    times = await keyframes.keyframe_times(path, limits, max_packets=20_000)
    assert times == [n / 2 for n in range(40)], times


# --- a file that grows while Spool reads it -----------------------------------------------------


class GrowsWhenFetched:
    """Object storage whose source object gains bytes between the probe's size check and its
    fetch: a writer outside Spool appending to it (Spool's own writes are atomic)."""

    def __init__(self, inner, path: Path, extra: bytes) -> None:
        self.inner = inner
        self.path = path
        self.extra = extra

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def get_to(self, key: str, local_path) -> None:
        if key == SOURCE:
            with self.path.open("ab") as fh:
                fh.write(self.extra)
        self.inner.get_to(key, local_path)


@pytest.fixture
def moov_at_end_clip(clips) -> Path:
    missing = media_corpus.CASES_BY_NAME["moov_at_end"].unavailable()
    if missing:
        service_missing(missing)
    workdir = clips / "growing"
    workdir.mkdir(exist_ok=True)
    ctx = Context(workdir, workdir, workdir / "none", "http://127.0.0.1:9/")
    return media_corpus.CASES_BY_NAME["moov_at_end"].make(ctx)


async def test_a_file_growing_past_the_limit_is_judged_by_the_bytes_read(
    moov_at_end_clip, tmp_path
):
    size = moov_at_end_clip.stat().st_size
    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=size + 100)
    acts = VideoActivitySet.from_settings(settings)
    acts.files.storage.put_file(moov_at_end_clip, SOURCE)
    acts.files.storage = GrowsWhenFetched(
        acts.files.storage, settings.resolved_storage_dir / SOURCE, b"\0" * 5000
    )
    with pytest.raises(ApplicationError) as err:
        await run(acts, "video.probe", ProbeInput(VIDEO_ID, SOURCE))
    assert err.value.type == INVALID_VIDEO and err.value.non_retryable
    assert f"The file is {size + 5000:,} bytes; the limit is {size + 100:,} bytes" in (
        err.value.message
    )


async def test_a_file_still_being_written_is_refused_then_accepted_once_whole(
    moov_at_end_clip, tmp_path
):
    """What a user expects of a file probed while its writer is still appending to it: a
    refusal that says it is cut off (not a retry, not a vague error), and the whole file,
    once written, accepted with its true duration."""
    data = moov_at_end_clip.read_bytes()
    settings = Settings(data_dir=tmp_path / "data")
    acts = VideoActivitySet.from_settings(settings)
    stored = settings.resolved_storage_dir / SOURCE
    acts.files.storage.put_bytes(data[: len(data) // 3], SOURCE)
    with pytest.raises(ApplicationError) as err:
        await run(acts, "video.probe", ProbeInput(VIDEO_ID, SOURCE))
    assert err.value.type == INVALID_VIDEO and err.value.non_retryable
    assert "cut off while uploading" in err.value.message
    with stored.open("ab") as fh:  # the writer finishes
        fh.write(data[len(data) // 3 :])
    probe = await run(acts, "video.probe", ProbeInput(VIDEO_ID, SOURCE))
    assert probe.has_video and abs(probe.duration - media_corpus.CLIP_SECONDS) <= 0.15
    assert probe.size_bytes == len(data)


async def test_a_worker_without_ffprobe_retries_instead_of_blaming_the_upload(
    clips, tmp_path, monkeypatch
):
    """A misconfigured host is not a bad upload: the probe's error must stay retryable."""
    from spool.process import ToolMissing

    clip = media_clips.make_clip(clips / "fine.mp4", width=160, height=120, seconds=1, speech=None)
    acts = VideoActivitySet.from_settings(Settings(data_dir=tmp_path / "data"))
    acts.files.storage.put_file(clip, "videos/v-noprobe/source")
    bin_dir = tmp_path / "bin-without-ffmpeg"  # the util-linux wrappers, but no ffprobe
    bin_dir.mkdir()
    for tool in ("setpriv", "prlimit"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(ToolMissing, match="ffprobe is not installed"):
        await run(
            acts,
            "video.probe",
            ProbeInput(video_id="v-noprobe", source_key="videos/v-noprobe/source"),
        )
