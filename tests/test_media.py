"""The media layer on real ffmpeg/ffprobe and real Whisper (tiny.en), on generated clips."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.plain import ladder_args, rendition_args, transcode_ladder, transcode_rendition
from spool import whisper
from spool.config import Settings
from spool.media import tools
from spool.media.audio import aac_args, extract_audio_16k_mono, wav_args
from spool.media.chunks import RenditionSpec, chunk_args, encode_setup, video_end_args
from spool.media.keyframes import keyframes_args
from spool.media.poster import extract_poster, poster_args
from spool.media.probe import (
    FIRST_FRAMES_PACKETS,
    decoded_frame_count,
    first_frames_args,
    probe,
    probe_args,
)
from spool.media.tools import (
    DEMUXER_WHITELIST,
    Limits,
    MediaError,
    MediaTimeout,
    file_url,
    run_tool,
)
from spool.models.chunks import ChunkPlan
from spool.models.video import plan_rungs
from tests.support import caption_rules, media_clips
from tests.support.media_checks import check_srt, check_vtt, ffmpeg_processes, ffprobe_json
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def speech_1080(clips) -> Path:
    return media_clips.make_clip(clips / "speech1080.mp4", width=1920, height=1080)


async def test_probe_reads_size_duration_and_streams(speech_1080):
    info = await probe(speech_1080)
    assert (info.width, info.height) == (1920, 1080)
    assert info.has_video and info.has_audio
    assert abs(info.duration - 3.5) < 0.1
    assert info.size_bytes == speech_1080.stat().st_size


async def test_rendition_is_playable_h264_at_the_right_height(speech_1080, tmp_path):
    src = await probe(speech_1080)
    percents: list[float] = []
    started = time.monotonic()
    await transcode_rendition(
        speech_1080,
        tmp_path / "720p.mp4",
        720,
        video_kbps=2800,
        duration=src.duration,
        on_progress=percents.append,
    )
    took = time.monotonic() - started
    out = await probe(tmp_path / "720p.mp4")
    assert (out.width, out.height) == (1280, 720)
    assert out.video_codec == "h264" and out.audio_codec == "aac"
    assert abs(out.duration - src.duration) <= 0.1
    assert percents and percents[-1] == 100.0
    # faststart: the index (moov) comes before the media data
    head = (tmp_path / "720p.mp4").read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (
        head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat")
    )
    print(f"720p rendition of a 3.5 s 1080p clip: {took:.2f} s")


async def test_single_decode_ladder_makes_every_rendition(speech_1080, tmp_path):
    src = await probe(speech_1080)
    specs = [
        RenditionSpec(tmp_path / f"{h}p.mp4", h, kbps) for h, kbps in ((720, 2800), (360, 800))
    ]
    percents: list[float] = []
    await transcode_ladder(speech_1080, specs, duration=src.duration, on_progress=percents.append)
    for spec in specs:
        out = await probe(spec.dst)
        assert out.height == spec.height and out.width % 2 == 0
        assert out.video_codec == "h264" and out.audio_codec == "aac"
        assert abs(out.duration - src.duration) <= 0.1
    assert percents and percents[-1] == 100.0
    argv = ladder_args("/a/-i.mp4", specs)
    # Hardened like the per-rendition command: one input, local files only, no stdin.
    assert argv.count("-i") == 1 and "file:/a/-i.mp4" in argv and "-nostdin" in argv
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"


async def test_single_decode_ladder_is_killed_on_timeout(clips, tmp_path):
    clip = media_clips.make_clip(
        clips / "long.mp4",
        width=640,
        height=360,
        seconds=20,
        speech=None,
        tone=True,
        pattern="testsrc2",
    )
    specs = [
        RenditionSpec(tmp_path / "a.mp4", 360, 800),
        RenditionSpec(tmp_path / "b.mp4", 240, 400),
    ]
    with pytest.raises(MediaTimeout):
        await transcode_ladder(clip, specs, preset="veryslow", limits=Limits(timeout_seconds=0.5))
    assert ffmpeg_processes(str(tmp_path)) == []


async def test_odd_small_source_gives_one_even_rendition(clips, tmp_path):
    clip = media_clips.make_clip(clips / "odd.mp4", width=321, height=241, seconds=2, speech=None)
    info = await probe(clip)
    assert plan_rungs(info.width, info.height) == [240]
    await transcode_rendition(
        clip, tmp_path / "240p.mp4", 240, video_kbps=300, has_audio=info.has_audio
    )
    out = await probe(tmp_path / "240p.mp4")
    assert out.height == 240 and out.width % 2 == 0 and out.height % 2 == 0
    assert not out.has_audio


async def test_rotated_portrait_rendition_is_upright(clips, tmp_path):
    clip = media_clips.make_clip(
        clips / "portrait.mp4", width=640, height=360, seconds=2, rotate=90
    )
    info = await probe(clip)
    assert info.rotation in (90, -90) and info.width < info.height
    assert plan_rungs(info.width, info.height) == [360]  # its own full size: 360x640 is 360p
    await transcode_rendition(clip, tmp_path / "360p.mp4", 360, video_kbps=800)
    out = await probe(tmp_path / "360p.mp4")
    assert (out.width, out.height, out.rotation) == (360, 640, 0)


async def test_poster_is_a_jpeg(speech_1080, tmp_path):
    await extract_poster(speech_1080, tmp_path / "poster.jpg", 0.35)
    data = (tmp_path / "poster.jpg").read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) > 1000


async def test_audio_is_16k_mono_wav(speech_1080, tmp_path):
    await extract_audio_16k_mono(speech_1080, tmp_path / "a.wav")
    data = (tmp_path / "a.wav").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    channels = int.from_bytes(data[22:24], "little")
    rate = int.from_bytes(data[24:28], "little")
    assert (channels, rate) == (1, 16000)


@pytest.mark.parametrize("maker", ["text", "empty", "truncated"])
async def test_probe_refuses_what_is_not_a_video(clips, maker):
    path = {
        "text": lambda: media_clips.make_text_file(clips / "notes.txt"),
        "empty": lambda: media_clips.make_empty(clips / "empty.mp4"),
        "truncated": lambda: media_clips.make_truncated_mp4(clips / "cut.mp4"),
    }[maker]()
    with pytest.raises(MediaError):
        await probe(path)


async def test_audio_only_has_no_video_stream(clips):
    info = await probe(media_clips.make_audio_only(clips / "voice.m4a"))
    assert info.has_audio and not info.has_video


def _strip_whitelists(argv: list[str]) -> list[str]:
    """The same command without its protocol and format whitelists: what ffmpeg does unguarded."""
    out: list[str] = []
    skip = False
    for part in argv:
        if skip:
            skip = False
        elif part in ("-protocol_whitelist", "-format_whitelist"):
            skip = True
        else:
            out.append(part)
    return out


def _hardened_builders(src: Path, out_dir: Path) -> dict[str, list[str]]:
    """Every command Spool runs on an upload, as its builder makes it (and the benches')."""
    return {
        "probe": probe_args(src),
        "first_frames": first_frames_args(src),
        "poster": poster_args(src, out_dir / "poster.jpg", 0.1),
        "audio": wav_args(src, out_dir / "audio.wav"),
        "keyframes": keyframes_args(src),
        "video_end": video_end_args(src),
        "chunk": chunk_args(
            encode_setup(
                src,
                ChunkPlan(0, 0.0, 1.0),
                fps=15.0,
                segment_seconds=1.0,
                preset="veryfast",
                thumb_every=None,
                thumb_width=160,
                thumb_dir=None,
            ),
            [RenditionSpec(out_dir / "c.mp4", 120, 300)],
            with_thumbs=False,
        ),
        "aac_track": aac_args(src, out_dir / "audio.m4a", audio_kbps=128, duration=1.0),
        # The benches' plain script (bench/plain.py), as hardened as Spool's own.
        "rendition": rendition_args(src, out_dir / "r.mp4", 120, video_kbps=300),
        "ladder": ladder_args(src, [RenditionSpec(out_dir / "l.mp4", 120, 300)]),
    }


def _input_position(argv: list[str]) -> int:
    """Where the input name is: ffprobe's last argument, ffmpeg's after its one ``-i``."""
    return len(argv) - 1 if argv[0] == "ffprobe" else argv.index("-i") + 1


def test_every_command_carries_the_input_hardening(tmp_path):
    src = Path("/up/-i.mp4")
    for name, argv in _hardened_builders(src, tmp_path).items():
        where = _input_position(argv)
        # Input options only count before the input they guard.
        assert argv[where] == "file:/up/-i.mp4", name
        assert argv[argv.index("-protocol_whitelist") + 1] == "file", name
        assert argv[argv.index("-format_whitelist") + 1] == DEMUXER_WHITELIST, name
        assert argv.index("-protocol_whitelist") < where, name
        assert argv.index("-format_whitelist") < where, name
        if argv[0] == "ffmpeg":
            assert "-nostdin" in argv, name
            outputs = [part for part in argv if str(tmp_path) in part]
            assert outputs and all(o.startswith(f"file:{tmp_path}/") for o in outputs), name
    assert not set(DEMUXER_WHITELIST.split(",")) & {"hls", "concat", "image2", "tty"}
    with pytest.raises(ValueError, match="media paths must be absolute: relative/name.mp4"):
        file_url("relative/name.mp4")


async def test_playlists_and_other_protocols_are_refused(clips, tmp_path):
    # An ffconcat playlist (named like a video) pointing at a real local MP4: unguarded,
    # ffmpeg follows it and reads the other file, so each refusal below is the whitelist's.
    media_clips.make_clip(
        clips / "target.mp4", width=160, height=120, seconds=1, speech=None, tone=True
    )
    playlist = clips / "playlist.mp4"
    playlist.write_text("ffconcat version 1.0\nfile target.mp4\n")
    for name, argv in _hardened_builders(playlist, tmp_path).items():
        await run_tool(_strip_whitelists(argv), Limits(timeout_seconds=120))
        with pytest.raises(MediaError) as err:
            await run_tool(argv, Limits(timeout_seconds=120))
        assert "not on whitelist" in err.value.stderr, (name, err.value.stderr)
    hls = clips / "evil.m3u8"
    hls.write_text("#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n#EXTINF:1,\n/etc/passwd\n")
    with pytest.raises(MediaError):
        await probe(hls)


@pytest.fixture
def paced_clip(clips, monkeypatch) -> Path:
    """A 20 s clip that ffmpeg reads at its own pace: no encode of it ends before 20 s."""
    monkeypatch.setattr(tools, "INPUT_OPTIONS", media_clips.pace_inputs())
    return media_clips.make_paced_clip(clips / "paced.mp4")


async def test_cancel_kills_ffmpeg_and_waits(paced_clip, tmp_path):
    progressed = asyncio.Event()
    task = asyncio.create_task(
        transcode_rendition(
            paced_clip,
            tmp_path / "cancel.mp4",
            180,
            video_kbps=800,
            duration=20.0,
            on_progress=lambda percent: percent > 0 and progressed.set(),
        )
    )
    await asyncio.wait_for(progressed.wait(), 60)
    assert ffmpeg_processes(str(tmp_path))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ffmpeg_processes(str(tmp_path)) == []


async def test_timeout_kills_ffmpeg(paced_clip, tmp_path):
    with pytest.raises(MediaTimeout) as err:
        await transcode_rendition(
            paced_clip,
            tmp_path / "slow.mp4",
            180,
            video_kbps=800,
            limits=Limits(timeout_seconds=2),
        )
    assert "longer than 2 s" in str(err.value)
    assert ffmpeg_processes(str(tmp_path)) == []


async def test_memory_limit_stops_ffmpeg(speech_1080, tmp_path):
    # 500 MB lets ffmpeg map its libraries and start (below ~300 MB it cannot even load libc
    # and exits 127), but not hold x264's 1080p frame buffers: the limit is what stops it.
    with pytest.raises(MediaError) as err:
        await transcode_rendition(
            speech_1080,
            tmp_path / "oom.mp4",
            1080,
            video_kbps=5000,
            limits=Limits(memory_limit_mb=500),
        )
    assert "error while loading shared libraries" not in err.value.stderr, err.value.stderr
    # Where the allocation fails varies (a malloc in the demuxer, or x264 refusing to open
    # for want of frame buffers), so the message is one of these...
    assert re.search(
        r"malloc of size \d+ failed|Cannot allocate memory|Could not allocate|"
        r"Error while opening encoder",
        err.value.stderr,
    ), err.value.stderr
    # ...and the very same call with room to work succeeds: the limit, not the argv, failed.
    await transcode_rendition(
        speech_1080,
        tmp_path / "fits.mp4",
        1080,
        video_kbps=5000,
        limits=Limits(memory_limit_mb=4096),
    )
    assert (tmp_path / "fits.mp4").stat().st_size > 0


def _proc_limits(pid: int) -> dict[str, str]:
    """/proc/<pid>/limits as {name: soft limit}."""
    with open(f"/proc/{pid}/limits") as fh:
        lines = fh.read().splitlines()[1:]
    return {line[:26].strip(): line[26:].split()[0] for line in lines}


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _thread_nice(pid: int, tid: str) -> int:
    """A thread's nice value: field 19 of /proc/PID/task/TID/stat (after the command)."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


async def test_running_ffmpeg_has_the_limits_and_is_the_started_process(paced_clip, tmp_path):
    progressed = asyncio.Event()
    task = asyncio.create_task(
        transcode_rendition(
            paced_clip,
            tmp_path / "limited.mp4",
            180,
            video_kbps=800,
            duration=20.0,
            limits=Limits(memory_limit_mb=3000, nice=6),
            on_progress=lambda percent: percent > 0 and progressed.set(),
        )
    )
    try:
        await asyncio.wait_for(progressed.wait(), 60)
        [pid] = ffmpeg_processes(str(tmp_path))
        limits = _proc_limits(pid)
        assert limits["Max address space"] == str(3000 * 1024 * 1024), limits
        assert limits["Max core file size"] == "0", limits
        # Lower CPU priority than the worker, for every encoder thread and for its session's
        # scheduling group, where the kernel has them.
        base = os.getpriority(os.PRIO_PROCESS, 0)
        assert {_thread_nice(pid, tid) for tid in os.listdir(f"/proc/{pid}/task")} == {base + 6}
        autogroup = Path(f"/proc/{pid}/autogroup")
        if autogroup.exists():
            assert autogroup.read_text().split()[-1] == "6"
        # The wrappers exec'd into ffmpeg: it is this process's own child and leads its group.
        assert _parent_pid(pid) == os.getpid()
        assert os.getpgid(pid) == pid
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ffmpeg_processes(str(tmp_path)) == []


# Starts a quiet ffmpeg through run_tool that would run for ten minutes (it writes nothing to
# its pipes, so no SIGPIPE can end it early) and waits for it.
HELPER = """
import asyncio, sys
from spool.media.tools import Limits, run_tool
argv = ["ffmpeg", "-nostdin", "-loglevel", "quiet", "-re", "-f", "lavfi",
        "-i", "testsrc=size=160x120:rate=10:duration=600", "-y", sys.argv[1]]
asyncio.run(run_tool(argv, Limits()))
"""


def test_ffmpeg_dies_with_the_process_that_started_it(clips, tmp_path):
    helper = subprocess.Popen(
        [sys.executable, "-c", HELPER, str(tmp_path / "orphan.mp4")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (found := ffmpeg_processes(str(tmp_path))):
            assert helper.poll() is None, helper.stderr.read().decode()
            assert time.monotonic() < deadline, "ffmpeg did not start"
            time.sleep(0.1)
        [pid] = found
        assert _parent_pid(pid) == helper.pid
        helper.kill()  # SIGKILL: nothing in the helper gets to clean up
        helper.wait(30)
        deadline = time.monotonic() + 60
        while ffmpeg_processes(str(tmp_path)):
            assert time.monotonic() < deadline, "ffmpeg outlived the process that started it"
            time.sleep(0.1)
    finally:
        helper.kill()
        helper.wait(30)
        for pid in ffmpeg_processes(str(tmp_path)):
            os.kill(pid, 9)


@pytest.fixture(scope="module")
def whisper_settings(whisper_ready):
    return Settings()


async def test_whisper_transcribes_speech_and_writes_captions(
    speech_1080, tmp_path, whisper_settings
):
    wav = tmp_path / "a.wav"
    await extract_audio_16k_mono(speech_1080, wav)
    segments = await asyncio.to_thread(whisper.transcribe, wav, settings=whisper_settings)
    spoken = media_clips.normalized_words(media_clips.SPEECH_TEXT)
    heard = set(media_clips.normalized_words(" ".join(s.text for s in segments)))
    assert sum(w in heard for w in spoken) / len(spoken) >= 0.8, segments
    assert all(0 <= s.start < s.end <= 3.6 for s in segments)
    assert caption_rules.shape_problems(segments) == []
    check_vtt(whisper.to_vtt(segments), len(segments))
    check_srt(whisper.to_srt(segments), len(segments))


@pytest.mark.parametrize("sound", ["music", "noise", "silence"])
def test_sound_without_speech_gives_no_captions(clips, whisper_settings, sound):
    """Music, noise and silence yield no cue: nothing is invented where nobody speaks."""
    source = {
        "music": media_clips.MUSIC,
        "noise": media_clips.NOISE,
        "silence": "anullsrc=r=16000:cl=mono",
    }[sound]
    wav = media_clips.sound_wav(clips / f"{sound}.wav", source, seconds=10)
    assert whisper.transcribe(wav, settings=whisper_settings) == []


def speech_onset(wav: Path) -> float:
    """When the first sound in a 16 kHz mono WAV begins: its first 10 ms over -40 dBFS."""
    import wave

    import numpy as np

    with wave.open(str(wav), "rb") as f:
        samples = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32)
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160) / 32768.0
    loud = np.flatnonzero(np.sqrt((frames * frames).mean(axis=1)) > 0.01)
    return float(loud[0]) * 0.01


def test_a_cue_starts_when_speech_starts_after_silence(clips, whisper_settings):
    """12 s of silence, then one sentence: no cue in the silence, the first starts within
    0.3 s of the first word, and the last ends after the last word, not 14.5 s in."""
    wav = media_clips.silence_then_speech_wav(clips / "late.wav", silence=12.0)
    onset = speech_onset(wav)
    assert 11.9 < onset < 12.5
    cues = whisper.transcribe(wav, settings=whisper_settings)
    assert cues, "the sentence was not heard"
    assert abs(cues[0].start - onset) <= 0.3, (onset, cues)
    assert caption_rules.shape_problems(cues) == []
    heard = set(media_clips.normalized_words(" ".join(c.text for c in cues)))
    spoken = media_clips.normalized_words(media_clips.SPEECH_TEXT)
    assert sum(w in heard for w in spoken) / len(spoken) >= 0.8, cues


@pytest.fixture(scope="module")
def five_sentences_wav(clips) -> Path:
    """16 kHz mono speech that tiny.en splits into several segments."""
    spoken = media_clips.speech_wav(
        clips / "five.speech.wav",
        " ".join(
            [
                "Hello world, this is a simple test.",
                "The weather is nice today.",
                "We are testing captions for videos.",
                "Each sentence should become a segment.",
                "This is the last sentence of the clip.",
            ]
        ),
    )
    wav = clips / "five.wav"
    asyncio.run(extract_audio_16k_mono(spoken, wav))
    return wav


def test_whisper_cancel_event_stops_between_segments(five_sentences_wav, whisper_settings):
    import threading

    full = whisper.transcribe(five_sentences_wav, settings=whisper_settings)
    assert len(full) >= 3, full
    assert caption_rules.shape_problems(full) == []
    event = threading.Event()
    seen: list[whisper.Segment] = []

    def cancel_after_first(segment: whisper.Segment, _end: float) -> None:
        seen.append(segment)
        event.set()  # as an activity's cancel would, while Whisper is mid-file

    with pytest.raises(whisper.TranscriptionCancelled):
        whisper.transcribe(
            five_sentences_wav,
            settings=whisper_settings,
            cancel_event=event,
            on_segment=cancel_after_first,
        )
    assert len(seen) == 1 < len(full)


def test_whisper_cancel_event_set_before_the_call_stops_at_once(
    five_sentences_wav, whisper_settings
):
    import threading

    event = threading.Event()
    event.set()
    seen: list[whisper.Segment] = []
    with pytest.raises(whisper.TranscriptionCancelled):
        whisper.transcribe(
            five_sentences_wav,
            settings=whisper_settings,
            cancel_event=event,
            on_segment=lambda seg, _end: seen.append(seg),
        )
    assert seen == []


def test_caption_timestamps():
    segs = [whisper.Segment(3661.5, 3662.25, "a --> b"), whisper.Segment(0, 0.001, "c")]
    assert "01:01:01.500 --> 01:01:02.250" in whisper.to_vtt(segs)
    assert "01:01:01,500 --> 01:01:02,250" in whisper.to_srt(segs)
    check_vtt(whisper.to_vtt(segs), 2)
    check_srt(whisper.to_srt(segs), 2)


def test_whisper_survives_forks_in_a_worker_process(clips, whisper_ready):
    """A worker forks ffmpeg children while Whisper runs on threads; that must never hang."""
    clip = media_clips.make_clip(clips / "fork.mp4", width=160, height=120, seconds=2.5)
    wav = clips / "fork.wav"
    asyncio.run(extract_audio_16k_mono(clip, wav, limits=Limits()))
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fork_during_whisper", str(wav)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the process hung: Whisper and fork deadlocked")
    assert proc.returncode == 0, output
    assert "all transcriptions finished" in output


def _stored_upload(settings: Settings, path: Path, key: str) -> str:
    from spool.storage import open_storage

    open_storage(settings).put_file(path, key)
    return key


async def test_rendition_bitrate_follows_the_bitrate_ladder_setting(clips, tmp_path):
    """With the fixed ladder (SPOOL_RATE_CONTROL=ladder), SPOOL_BITRATE_LADDER sets each
    rendition's video bitrate: the same source at 150 and at 1200 kbit/s for its height gives
    files whose bitrates follow the setting (under constant quality, the default, the ladder
    is each rung's ceiling instead: tests/test_rates.py)."""
    from activities.video import VideoActivitySet
    from tests.support.renditions import make_rendition

    clip = media_clips.make_clip(
        clips / "ladder.mp4", width=320, height=240, seconds=3, speech=None, pattern="testsrc2"
    )
    source = await probe(clip)
    measured = {}
    for kbps in (150, 1200):
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / f"data{kbps}",
            bitrate_ladder={240: kbps},
            rate_control="ladder",
        )
        key = _stored_upload(settings, clip, "videos/ladder/source")
        result = await make_rendition(
            VideoActivitySet.from_settings(settings), "ladder", key, source, 240
        )
        measured[kbps] = result.bitrate_kbps
    # x264's rate control keeps the average near the target, and never far above maxrate.
    assert measured[150] <= 150 * 1.5, measured
    assert measured[1200] >= 1200 / 2, measured


async def test_cancelling_transcribe_stops_whisper_mid_file(
    clips, five_sentences_wav, tmp_path, whisper_settings, monkeypatch
):
    """A cancel that reaches the transcribe activity while Whisper is mid-file stops Whisper
    at its next segment (it does not run on to the end), and the activity ends cancelled."""
    import threading

    from temporalio.testing import ActivityEnvironment

    from activities.video import VideoActivitySet
    from spool.models.captions import TranscribeInput

    settings = whisper_settings.model_copy(update={"data_dir": tmp_path / "data"})
    key = _stored_upload(settings, five_sentences_wav, "videos/cancel/audio.wav")
    env = ActivityEnvironment()
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    outcome: list[str] = []
    real_transcribe = whisper.transcribe

    def held_after_first_segment(wav, *, cancel_event: threading.Event, on_segment, **kw):
        def segment_then_cancel(segment, end):
            on_segment(segment, end)
            seen.append(segment.text)
            if len(seen) == 1:
                loop.call_soon_threadsafe(env.cancel)
                # The gate: Whisper waits here until the activity has passed the cancel on.
                cancel_event.wait(120)

        try:
            segments = real_transcribe(
                wav, cancel_event=cancel_event, on_segment=segment_then_cancel, **kw
            )
        except whisper.TranscriptionCancelled:
            outcome.append("cancelled")
            raise
        outcome.append(f"finished with {len(segments)} segments")
        return segments

    monkeypatch.setattr(whisper, "transcribe", held_after_first_segment)
    with pytest.raises(asyncio.CancelledError):
        await env.run(
            VideoActivitySet.from_settings(settings).captions.transcribe,
            TranscribeInput(video_id="cancel", audio_key=key, duration=14.0),
        )
    assert outcome == ["cancelled"] and len(seen) == 1


# --- what each command makes, on small clips (fast: bench/mutation.py runs these) ------------

UPLOAD_TITLE = "uploader-private-title"


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def small_clip(clips) -> Path:
    """2 s of 320x240 pictures with a stereo 44.1 kHz tone, tagged as a phone tags an upload
    (a title and where it was shot): every knob of the commands shows in what they make."""
    path = clips / "small.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=15",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-ac",
        "2",
        "-metadata",
        f"title={UPLOAD_TITLE}",
        "-metadata",
        "location=+48.8577+002.2950/",
        path,
    )
    return path


def _ffprobe(path: Path) -> dict:
    return ffprobe_json(
        path,
        "-show_entries",
        "stream=codec_type,codec_name,width,height,pix_fmt,sample_aspect_ratio,channels"
        ":format_tags",
    )


def _x264_settings(path: Path) -> dict[str, str]:
    """The settings x264 wrote into the stream it encoded (its SEI "options:" string)."""
    found = re.search(rb"x264 - core .*? options: ([^\x00]+)", path.read_bytes())
    assert found, f"{path} has no x264 settings"
    return dict(part.split("=", 1) for part in found[1].decode().split() if "=" in part)


def check_rendition(path: Path, height: int, kbps: int, *, source: Path) -> None:
    """What a player and a viewer rely on in a rendition made from the 4:3 ``small_clip``."""
    info = _ffprobe(path)
    [video] = [s for s in info["streams"] if s["codec_type"] == "video"]
    [audio] = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p"), video
    assert (video["width"], video["height"]) == (height * 4 // 3, height), video
    assert video["sample_aspect_ratio"] == "1:1", video  # square pixels: shown as stored
    # The ladder's bitrate, peaks capped at 1.5x with a 2 s buffer, so a player on a link of
    # that speed keeps up.
    x264 = _x264_settings(path)
    assert (x264["bitrate"], x264["vbv_maxrate"], x264["vbv_bufsize"]) == (
        str(kbps),
        str(kbps * 3 // 2),
        str(kbps * 2),
    ), x264
    assert (audio["codec_name"], audio["channels"]) == ("aac", 2), audio
    # The uploader's tags (title, location) never reach published media.
    assert "location" in _ffprobe(source)["format"]["tags"]  # the source does carry them
    assert not {"title", "location"} & set(info["format"].get("tags", {})), info["format"]
    assert UPLOAD_TITLE.encode() not in path.read_bytes()
    # faststart: the index (moov) before the media data, so playback starts before the end.
    data = path.read_bytes()
    assert -1 < data.find(b"moov") < data.find(b"mdat"), path


async def test_a_rendition_follows_its_settings_and_drops_the_upload_tags(small_clip, tmp_path):
    percents: list[float] = []
    await transcode_rendition(
        small_clip,
        tmp_path / "180p.mp4",
        180,
        video_kbps=300,
        duration=2.0,
        on_progress=percents.append,
    )
    check_rendition(tmp_path / "180p.mp4", 180, 300, source=small_clip)
    assert percents and percents[-1] == 100.0


async def test_each_ladder_output_gets_its_own_rendition_settings(small_clip, tmp_path):
    specs = [
        RenditionSpec(tmp_path / "180p.mp4", 180, 300),
        RenditionSpec(tmp_path / "120p.mp4", 120, 150),
    ]
    percents: list[float] = []
    await transcode_ladder(small_clip, specs, duration=2.0, on_progress=percents.append)
    for spec in specs:
        check_rendition(spec.dst, spec.height, spec.video_kbps, source=small_clip)
    assert percents and percents[-1] == 100.0
    with pytest.raises(ValueError, match="^no renditions requested$"):
        ladder_args(small_clip, [])


async def test_a_ladder_of_a_silent_source_has_no_audio_tracks(black_then_white, tmp_path):
    specs = [
        RenditionSpec(tmp_path / "120p.mp4", 120, 150),
        RenditionSpec(tmp_path / "90p.mp4", 90, 100),
    ]
    await transcode_ladder(black_then_white, specs, has_audio=False)
    for spec in specs:
        streams = _ffprobe(spec.dst)["streams"]
        assert [(s["codec_type"], s["height"]) for s in streams] == [("video", spec.height)]


@pytest.fixture(scope="module")
def black_then_white(clips) -> Path:
    """1 s of black pictures, then 1 s of white ones, a keyframe every third of a second."""
    path = clips / "black-then-white.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=160x120:r=15:d=1,format=yuv420p[a];"
        "color=c=white:s=160x120:r=15:d=1,format=yuv420p[b];[a][b]concat=n=2:v=1:a=0",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "5",
        path,
    )
    return path


def _mean_brightness(picture: Path) -> tuple[int, float]:
    """(pixels, mean 0-255 luma) of a decoded picture."""
    gray = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(picture), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return len(gray), sum(gray) / max(1, len(gray))


@pytest.mark.parametrize("at_seconds, shade", [(0.3, "black"), (1.5, "white"), (-1.0, "black")])
async def test_the_poster_is_the_picture_at_the_requested_time(
    black_then_white, tmp_path, at_seconds, shade
):
    poster = tmp_path / "poster.jpg"
    await extract_poster(black_then_white, poster, at_seconds)
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    pixels, brightness = _mean_brightness(poster)
    assert pixels == 160 * 120  # one picture, at the source's size
    assert (brightness < 30) if shade == "black" else (brightness > 225), brightness


async def test_audio_for_whisper_is_16k_mono_16_bit_pcm_without_the_upload_tags(
    small_clip, tmp_path
):
    wav = tmp_path / "a.wav"
    await extract_audio_16k_mono(small_clip, wav, duration=2.0)
    data = wav.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    fmt = data.index(b"fmt ") + 8
    audio_format, channels, rate = (
        int.from_bytes(data[fmt : fmt + 2], "little"),
        int.from_bytes(data[fmt + 2 : fmt + 4], "little"),
        int.from_bytes(data[fmt + 4 : fmt + 8], "little"),
    )
    bits = int.from_bytes(data[fmt + 14 : fmt + 16], "little")
    assert (audio_format, channels, rate, bits) == (1, 1, 16000, 16)  # PCM, from stereo 44.1k
    assert UPLOAD_TITLE.encode() not in data


async def test_the_decode_check_decodes_only_the_first_packets(small_clip):
    """Proof that pictures decode, at a cost that does not grow with the upload: the first
    FIRST_FRAMES_PACKETS packets of the 30-picture clip, each one picture."""
    assert await decoded_frame_count(small_clip, Limits()) == FIRST_FRAMES_PACKETS


# --- run_tool's process control, on a stand-in tool (a Python script) -------------------------

PYTHON = Path(sys.executable).name


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_run_tool_turns_ffmpeg_progress_lines_into_percents():
    # ffmpeg's progress lines, one of them not ASCII (nothing makes ffmpeg promise it is)
    script = (
        "import sys\nfor line in (b'out_time_us=1500000', b'progress=continue',"
        " b'out_time_us=N/A', b'speed=\\xff', b'out_time_us=2250000',"
        " b'progress=continue', b'out_time_us=9000000', b'progress=end'):"
        " sys.stdout.buffer.write(line + b'\\n')"
    )
    argv = [sys.executable, "-c", script]
    percents: list[float] = []
    await run_tool(argv, Limits(), duration=3.0, on_progress=percents.append)
    assert percents == [50.0, 75.0, 100.0, 100.0]  # of 3 s; past the end is still 100
    percents.clear()  # without a duration only the end is known
    await run_tool(argv, Limits(), duration=None, on_progress=percents.append)
    assert percents == [100.0]
    # Without a progress callback, stdout is the result (ffprobe's JSON), undecodable bytes
    # (an upload's tags) replaced rather than failing the call.
    out = await run_tool(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'{\\xff}')"], Limits()
    )
    assert out == "{\ufffd}"


async def test_run_tool_reports_the_exit_code_the_last_line_and_only_the_tail():
    # The last line names a file as an upload spelled it, in no particular encoding.
    script = (
        "import sys\nfor i in range(100): print(f'line {i}', file=sys.stderr)\n"
        "sys.stderr.flush(); sys.stderr.buffer.write(b'caf\\xe9.mp4: bad\\n')\n"
        "print(file=sys.stderr)\nsys.exit(3)"
    )
    with pytest.raises(MediaError) as err:
        await run_tool([sys.executable, "-c", script], Limits())
    assert str(err.value) == f"{PYTHON} exited with 3: caf\ufffd.mp4: bad"
    # The error travels in the job's history: only the last STDERR_TAIL_LINES lines.
    assert err.value.stderr.split("\n") == (
        [f"line {i}" for i in range(72, 100)] + ["caf\ufffd.mp4: bad", ""]
    )


async def test_run_tool_reports_a_tool_that_fails_silently():
    with pytest.raises(MediaError) as err:
        await run_tool([sys.executable, "-c", "import sys; sys.exit(5)"], Limits())
    assert str(err.value) == f"{PYTHON} exited with 5: " and err.value.stderr == ""


async def test_run_tool_timeout_kills_a_tool_that_never_ends(tmp_path):
    marker = str(tmp_path / "never-ends")
    with pytest.raises(MediaTimeout) as err:
        await run_tool(
            [sys.executable, "-c", "import time; time.sleep(600)", marker],
            Limits(timeout_seconds=1),
        )
    assert str(err.value) == f"{PYTHON} took longer than 1 s"
    assert err.value.stderr == ""  # it printed nothing: the tail is empty, not missing
    assert _processes_mentioning(marker) == []  # killed and reaped before the error


def _processes_mentioning(marker: str) -> list[int]:
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        if marker in cmd and _alive(int(entry)):
            pids.append(int(entry))
    return pids


# A tool that starts a helper of its own (in its process group, detached from its pipes),
# writes the helper's pid to argv[1], then runs for ten minutes or exits at once (argv[2]).
SPAWNING_TOOL = """
import subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[1]],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(str(helper.pid))
import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
if sys.argv[2] == "stay":
    time.sleep(600)
"""


async def test_run_tool_cancel_kills_the_tool_and_what_it_started(tmp_path):
    pid_file = tmp_path / "helper.pid"
    task = asyncio.create_task(
        run_tool([sys.executable, "-c", SPAWNING_TOOL, str(pid_file), "stay"], Limits())
    )
    # The gate: the tool and its helper are both running.
    await eventually(pid_file.exists, "the tool and its helper", within=60, every=0.05)
    helper = int(pid_file.read_text())
    try:
        [tool] = [pid for pid in _processes_mentioning(str(pid_file)) if pid != helper]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not _alive(tool)  # killed and reaped before the cancel returns
        await eventually(lambda: not _alive(helper), "the helper to die", within=30, every=0.05)
    finally:
        _kill_if_alive(helper)


def _kill_if_alive(pid: int) -> None:
    """A failed test leaves nothing running for ten minutes."""
    with contextlib.suppress(ProcessLookupError):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_run_tool_kills_what_a_finished_tool_left_running(tmp_path):
    pid_file = tmp_path / "helper.pid"
    await run_tool([sys.executable, "-c", SPAWNING_TOOL, str(pid_file), "exit"], Limits())
    helper = int(pid_file.read_text())
    try:
        await eventually(lambda: not _alive(helper), "the helper to die", within=30, every=0.05)
    finally:
        _kill_if_alive(helper)


async def test_run_tool_never_lets_a_tool_read_the_workers_stdin():
    read, write = os.pipe()
    os.write(write, b"the worker's own input")
    os.close(write)
    saved = os.dup(0)
    os.dup2(read, 0)
    try:
        out = await run_tool(
            [sys.executable, "-c", "import sys; print(len(sys.stdin.buffer.read()))"],
            Limits(),
        )
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read)
    assert out.strip() == "0"


async def test_run_tool_starts_the_tool_itself_under_its_limits_leading_its_group():
    script = (
        "import os; print(open('/proc/self/limits').read());"
        "print('ids', os.getpid(), os.getppid(), os.getpgid(0))"
    )
    out = await run_tool([sys.executable, "-c", script], Limits(memory_limit_mb=3000))
    limits = {
        line[:26].strip(): line[26:].split()[0]
        for line in out.splitlines()[1:]
        if line and not line.startswith("ids")
    }
    assert limits["Max address space"] == str(3000 * 1024 * 1024), limits
    assert limits["Max core file size"] == "0", limits
    pid, parent, group = map(int, out.split("ids", 1)[1].split())
    assert parent == os.getpid() and group == pid  # exec'd into, our child, its group's leader


async def test_run_tool_names_a_missing_tool_as_the_hosts_problem():
    from spool.process import ToolMissing

    with pytest.raises(ToolMissing, match="no-such-tool-7 is not installed on this worker"):
        await run_tool(["no-such-tool-7", "-version"], Limits())


def make_anamorphic_clip(path):
    """320x240 stored, shown at 16:9 (sample aspect 4:3): DV/DVD/HDV-style wide pixels."""
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:d=1:r=15,setsar=4/3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-y",
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


async def test_anamorphic_source_is_probed_and_rendered_at_its_display_aspect(tmp_path):
    """Square output pixels (setsar=1) must not squeeze a wide picture stored in narrow
    pixels: the rendition keeps the 16:9 the source is shown at."""
    clip = make_anamorphic_clip(tmp_path / "wide-pixels.mp4")
    info = await probe(clip)
    assert (info.width, info.height) == (426, 240)
    await transcode_rendition(clip, tmp_path / "180p.mp4", 180, video_kbps=300, has_audio=False)
    specs = [
        RenditionSpec(tmp_path / "l180.mp4", 180, 300),
        RenditionSpec(tmp_path / "l120.mp4", 120, 200),
    ]
    await transcode_ladder(clip, specs, has_audio=False)
    for name, size in (("180p.mp4", "320x180"), ("l180.mp4", "320x180"), ("l120.mp4", "214x120")):
        out = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,sample_aspect_ratio",
                "-of",
                "csv=p=0:s=x",
                str(tmp_path / name),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == f"{size}x1:1", name
