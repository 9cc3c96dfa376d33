"""The media layer on real ffmpeg/ffprobe and real Whisper (tiny.en), on generated clips."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spool import media, whisper
from spool.config import Settings
from spool.models.video import plan_rendition_heights
from tests import media_clips

ROOT = Path(__file__).resolve().parent.parent


def ffmpeg_processes(marker: str) -> list[int]:
    """Pids of live ffmpeg/ffprobe processes whose command line mentions marker."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().decode("utf-8", "replace").split("\0")
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cmd and Path(cmd[0]).name in ("ffmpeg", "ffprobe") \
                and any(marker in part for part in cmd):
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="module")
def speech_1080(clips) -> Path:
    return media_clips.make_clip(clips / "speech1080.mp4", width=1920, height=1080)


async def test_probe_reads_size_duration_and_streams(speech_1080):
    info = await media.probe(speech_1080)
    assert (info.width, info.height) == (1920, 1080)
    assert info.has_video and info.has_audio
    assert abs(info.duration - 3.5) < 0.1
    assert info.size_bytes == speech_1080.stat().st_size


async def test_rendition_is_playable_h264_at_the_right_height(speech_1080, tmp_path):
    src = await media.probe(speech_1080)
    percents: list[float] = []
    started = time.monotonic()
    await media.transcode_rendition(speech_1080, tmp_path / "720p.mp4", 720, video_kbps=2800,
                                    duration=src.duration, on_progress=percents.append)
    took = time.monotonic() - started
    out = await media.probe(tmp_path / "720p.mp4")
    assert (out.width, out.height) == (1280, 720)
    assert out.video_codec == "h264" and out.audio_codec == "aac"
    assert abs(out.duration - src.duration) <= 0.1
    assert percents and percents[-1] == 100.0
    # faststart: the index (moov) comes before the media data
    head = (tmp_path / "720p.mp4").read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1
                                         or head.find(b"moov") < head.find(b"mdat"))
    print(f"720p rendition of a 3.5 s 1080p clip: {took:.2f} s")


async def test_single_decode_ladder_makes_every_rendition(speech_1080, tmp_path):
    src = await media.probe(speech_1080)
    specs = [media.RenditionSpec(tmp_path / f"{h}p.mp4", h, kbps)
             for h, kbps in ((720, 2800), (360, 800))]
    percents: list[float] = []
    await media.transcode_ladder(speech_1080, specs, duration=src.duration,
                                 on_progress=percents.append)
    for spec in specs:
        out = await media.probe(spec.dst)
        assert out.height == spec.height and out.width % 2 == 0
        assert out.video_codec == "h264" and out.audio_codec == "aac"
        assert abs(out.duration - src.duration) <= 0.1
    assert percents and percents[-1] == 100.0
    argv = media.ladder_args("/a/-i.mp4", specs)
    # Hardened like the per-rendition command: one input, local files only, no stdin.
    assert argv.count("-i") == 1 and "file:/a/-i.mp4" in argv and "-nostdin" in argv
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"


async def test_single_decode_ladder_is_killed_on_timeout(clips, tmp_path):
    clip = media_clips.make_clip(clips / "long.mp4", width=640, height=360, seconds=20,
                                 speech=None, tone=True, pattern="testsrc2")
    specs = [media.RenditionSpec(tmp_path / "a.mp4", 360, 800),
             media.RenditionSpec(tmp_path / "b.mp4", 240, 400)]
    with pytest.raises(media.MediaTimeout):
        await media.transcode_ladder(clip, specs, preset="veryslow",
                                     limits=media.Limits(timeout_seconds=0.5))
    assert ffmpeg_processes(str(tmp_path)) == []


async def test_odd_small_source_gives_one_even_rendition(clips, tmp_path):
    clip = media_clips.make_clip(clips / "odd.mp4", width=321, height=241, seconds=2,
                                 speech=None)
    info = await media.probe(clip)
    heights = plan_rendition_heights(info.height)
    assert heights == [240]
    await media.transcode_rendition(clip, tmp_path / "240p.mp4", 240, video_kbps=300,
                                    has_audio=info.has_audio)
    out = await media.probe(tmp_path / "240p.mp4")
    assert out.height == 240 and out.width % 2 == 0 and out.height % 2 == 0
    assert not out.has_audio


async def test_rotated_portrait_rendition_is_upright(clips, tmp_path):
    clip = media_clips.make_clip(clips / "portrait.mp4", width=640, height=360, seconds=2,
                                 rotate=90)
    info = await media.probe(clip)
    assert info.rotation in (90, -90) and info.width < info.height
    await media.transcode_rendition(clip, tmp_path / "480p.mp4", 480, video_kbps=1400)
    out = await media.probe(tmp_path / "480p.mp4")
    assert out.width < out.height and out.height == 480
    assert out.rotation == 0


async def test_poster_is_a_jpeg(speech_1080, tmp_path):
    await media.extract_poster(speech_1080, tmp_path / "poster.jpg", 0.35)
    data = (tmp_path / "poster.jpg").read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) > 1000


async def test_audio_is_16k_mono_wav(speech_1080, tmp_path):
    await media.extract_audio_16k_mono(speech_1080, tmp_path / "a.wav")
    data = (tmp_path / "a.wav").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    channels = int.from_bytes(data[22:24], "little")
    rate = int.from_bytes(data[24:28], "little")
    assert (channels, rate) == (1, 16000)


@pytest.mark.parametrize("maker", ["text", "empty", "truncated"])
async def test_probe_refuses_what_is_not_a_video(clips, maker):
    path = {"text": lambda: media_clips.make_text_file(clips / "notes.txt"),
            "empty": lambda: media_clips.make_empty(clips / "empty.mp4"),
            "truncated": lambda: media_clips.make_truncated_mp4(clips / "cut.mp4")}[maker]()
    with pytest.raises(media.MediaError):
        await media.probe(path)


async def test_audio_only_has_no_video_stream(clips):
    info = await media.probe(media_clips.make_audio_only(clips / "voice.m4a"))
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
    """Every command Spool runs on an upload, as its builder makes it."""
    return {
        "probe": media.probe_args(src),
        "first_frames": media.first_frames_args(src),
        "poster": media.poster_args(src, out_dir / "poster.jpg", 0.1),
        "audio": media.audio_args(src, out_dir / "audio.wav"),
        "rendition": media.rendition_args(src, out_dir / "r.mp4", 120, video_kbps=300),
        "ladder": media.ladder_args(src, [media.RenditionSpec(out_dir / "l.mp4", 120, 300)]),
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
        assert argv[argv.index("-format_whitelist") + 1] == media.DEMUXER_WHITELIST, name
        assert argv.index("-protocol_whitelist") < where, name
        assert argv.index("-format_whitelist") < where, name
        if argv[0] == "ffmpeg":
            assert "-nostdin" in argv, name
            outputs = [part for part in argv if str(tmp_path) in part]
            assert outputs and all(o.startswith(f"file:{tmp_path}/") for o in outputs), name
    assert not set(media.DEMUXER_WHITELIST.split(",")) & {"hls", "concat", "image2", "tty"}
    with pytest.raises(ValueError):
        media.file_url("relative/name.mp4")


async def test_playlists_and_other_protocols_are_refused(clips, tmp_path):
    # An ffconcat playlist (named like a video) pointing at a real local MP4: unguarded,
    # ffmpeg follows it and reads the other file, so each refusal below is the whitelist's.
    media_clips.make_clip(clips / "target.mp4", width=160, height=120, seconds=1, speech=None,
                          tone=True)
    playlist = clips / "playlist.mp4"
    playlist.write_text("ffconcat version 1.0\nfile target.mp4\n")
    for name, argv in _hardened_builders(playlist, tmp_path).items():
        await media.run_tool(_strip_whitelists(argv), media.Limits(timeout_seconds=120))
        with pytest.raises(media.MediaError) as err:
            await media.run_tool(argv, media.Limits(timeout_seconds=120))
        assert "not on whitelist" in err.value.stderr, (name, err.value.stderr)
    hls = clips / "evil.m3u8"
    hls.write_text("#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n#EXTINF:1,\n/etc/passwd\n")
    with pytest.raises(media.MediaError):
        await media.probe(hls)


@pytest.fixture
def paced_clip(clips, monkeypatch) -> Path:
    """A 20 s clip that ffmpeg reads at its own pace: no encode of it ends before 20 s."""
    monkeypatch.setattr(media, "INPUT_OPTIONS", media_clips.pace_inputs())
    return media_clips.make_clip(clips / "paced.mp4", width=320, height=180, seconds=20,
                                 speech=None, tone=True, pattern="testsrc2")


async def test_cancel_kills_ffmpeg_and_waits(paced_clip, tmp_path):
    progressed = asyncio.Event()
    task = asyncio.create_task(media.transcode_rendition(
        paced_clip, tmp_path / "cancel.mp4", 180, video_kbps=800, duration=20.0,
        on_progress=lambda percent: percent > 0 and progressed.set()))
    await asyncio.wait_for(progressed.wait(), 60)
    assert ffmpeg_processes(str(tmp_path))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ffmpeg_processes(str(tmp_path)) == []


async def test_timeout_kills_ffmpeg(paced_clip, tmp_path):
    with pytest.raises(media.MediaTimeout) as err:
        await media.transcode_rendition(paced_clip, tmp_path / "slow.mp4", 180,
                                        video_kbps=800, limits=media.Limits(timeout_seconds=2))
    assert "longer than 2 s" in str(err.value)
    assert ffmpeg_processes(str(tmp_path)) == []


async def test_memory_limit_stops_ffmpeg(speech_1080, tmp_path):
    # 500 MB lets ffmpeg map its libraries and start (below ~300 MB it cannot even load libc
    # and exits 127), but not hold x264's 1080p frame buffers: the limit is what stops it.
    with pytest.raises(media.MediaError) as err:
        await media.transcode_rendition(speech_1080, tmp_path / "oom.mp4", 1080,
                                        video_kbps=5000,
                                        limits=media.Limits(memory_limit_mb=500))
    assert "error while loading shared libraries" not in err.value.stderr, err.value.stderr
    # Where the allocation fails varies (a malloc in the demuxer, or x264 refusing to open
    # for want of frame buffers), so the message is one of these...
    assert re.search(r"malloc of size \d+ failed|Cannot allocate memory|Could not allocate|"
                     r"Error while opening encoder", err.value.stderr), err.value.stderr
    # ...and the very same call with room to work succeeds: the limit, not the argv, failed.
    await media.transcode_rendition(speech_1080, tmp_path / "fits.mp4", 1080, video_kbps=5000,
                                    limits=media.Limits(memory_limit_mb=4096))
    assert (tmp_path / "fits.mp4").stat().st_size > 0


def _proc_limits(pid: int) -> dict[str, str]:
    """/proc/<pid>/limits as {name: soft limit}."""
    with open(f"/proc/{pid}/limits") as fh:
        lines = fh.read().splitlines()[1:]
    return {line[:26].strip(): line[26:].split()[0] for line in lines}


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


async def test_running_ffmpeg_has_the_limits_and_is_the_started_process(paced_clip, tmp_path):
    progressed = asyncio.Event()
    task = asyncio.create_task(media.transcode_rendition(
        paced_clip, tmp_path / "limited.mp4", 180, video_kbps=800, duration=20.0,
        limits=media.Limits(memory_limit_mb=3000),
        on_progress=lambda percent: percent > 0 and progressed.set()))
    try:
        await asyncio.wait_for(progressed.wait(), 60)
        [pid] = ffmpeg_processes(str(tmp_path))
        limits = _proc_limits(pid)
        assert limits["Max address space"] == str(3000 * 1024 * 1024), limits
        assert limits["Max core file size"] == "0", limits
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
from spool import media
argv = ["ffmpeg", "-nostdin", "-loglevel", "quiet", "-re", "-f", "lavfi",
        "-i", "testsrc=size=160x120:rate=10:duration=600", "-y", sys.argv[1]]
asyncio.run(media.run_tool(argv, media.Limits()))
"""


def test_ffmpeg_dies_with_the_process_that_started_it(clips, tmp_path):
    helper = subprocess.Popen([sys.executable, "-c", HELPER, str(tmp_path / "orphan.mp4")],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


async def test_whisper_transcribes_speech_and_writes_captions(speech_1080, tmp_path,
                                                             whisper_settings):
    wav = tmp_path / "a.wav"
    await media.extract_audio_16k_mono(speech_1080, wav)
    segments = await asyncio.to_thread(whisper.transcribe, wav, settings=whisper_settings)
    spoken = media_clips.normalized_words(media_clips.SPEECH_TEXT)
    heard = set(media_clips.normalized_words(" ".join(s.text for s in segments)))
    assert sum(w in heard for w in spoken) / len(spoken) >= 0.8, segments
    assert all(0 <= s.start < s.end <= 3.6 for s in segments)
    check_vtt(whisper.to_vtt(segments), len(segments))
    check_srt(whisper.to_srt(segments), len(segments))


@pytest.fixture(scope="module")
def five_sentences_wav(clips) -> Path:
    """16 kHz mono speech that tiny.en splits into several segments."""
    spoken = media_clips.speech_wav(clips / "five.speech.wav", " ".join([
        "Hello world, this is a simple test.", "The weather is nice today.",
        "We are testing captions for videos.", "Each sentence should become a segment.",
        "This is the last sentence of the clip."]))
    wav = clips / "five.wav"
    asyncio.run(media.extract_audio_16k_mono(spoken, wav))
    return wav


def test_whisper_cancel_event_stops_between_segments(five_sentences_wav, whisper_settings):
    import threading

    full = whisper.transcribe(five_sentences_wav, settings=whisper_settings)
    assert len(full) >= 3, full
    event = threading.Event()
    seen: list[whisper.Segment] = []

    def cancel_after_first(segment: whisper.Segment, _end: float) -> None:
        seen.append(segment)
        event.set()  # as an activity's cancel would, while Whisper is mid-file

    with pytest.raises(whisper.TranscriptionCancelled):
        whisper.transcribe(five_sentences_wav, settings=whisper_settings, cancel_event=event,
                           on_segment=cancel_after_first)
    assert len(seen) == 1 < len(full)


def test_whisper_cancel_event_set_before_the_call_stops_at_once(five_sentences_wav,
                                                                 whisper_settings):
    import threading

    event = threading.Event()
    event.set()
    seen: list[whisper.Segment] = []
    with pytest.raises(whisper.TranscriptionCancelled):
        whisper.transcribe(five_sentences_wav, settings=whisper_settings, cancel_event=event,
                           on_segment=lambda seg, _end: seen.append(seg))
    assert seen == []


def test_caption_timestamps():
    segs = [whisper.Segment(3661.5, 3662.25, "a --> b"), whisper.Segment(0, 0.001, "c")]
    assert "01:01:01.500 --> 01:01:02.250" in whisper.to_vtt(segs)
    assert "01:01:01,500 --> 01:01:02,250" in whisper.to_srt(segs)
    check_vtt(whisper.to_vtt(segs), 2)
    check_srt(whisper.to_srt(segs), 2)


VTT_TIME = r"\d{2}:\d{2}:\d{2}\.\d{3}"
SRT_TIME = r"\d{2}:\d{2}:\d{2},\d{3}"


def check_vtt(text: str, cues: int) -> None:
    assert text.startswith("WEBVTT\n\n")
    blocks = [b for b in text.split("\n\n")[1:] if b.strip()]
    assert len(blocks) == cues
    for block in blocks:
        lines = block.splitlines()
        assert re.fullmatch(rf"{VTT_TIME} --> {VTT_TIME}", lines[1]), block
        assert lines[2] and "-->" not in lines[2]


def check_srt(text: str, cues: int) -> None:
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert len(blocks) == cues
    for i, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert lines[0] == str(i)
        assert re.fullmatch(rf"{SRT_TIME} --> {SRT_TIME}", lines[1]), block
        assert lines[2] and "-->" not in lines[2]


def test_whisper_survives_forks_in_a_worker_process(clips, whisper_ready):
    """A worker forks ffmpeg children while Whisper runs on threads; that must never hang."""
    clip = media_clips.make_clip(clips / "fork.mp4", width=160, height=120, seconds=2.5)
    wav = clips / "fork.wav"
    asyncio.run(media.extract_audio_16k_mono(clip, wav, limits=media.Limits()))
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.fork_during_whisper", str(wav)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
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
    """SPOOL_BITRATE_LADDER sets each rendition's video bitrate: the same source at 150 and at
    1200 kbit/s for its height gives files whose bitrates follow the setting."""
    from temporalio.testing import ActivityEnvironment

    from activities.video import VideoActivities
    from spool.models.video import RenditionInput

    clip = media_clips.make_clip(clips / "ladder.mp4", width=320, height=240, seconds=3,
                                 speech=None, pattern="testsrc2")
    measured = {}
    for kbps in (150, 1200):
        settings = Settings(_env_file=None, data_dir=tmp_path / f"data{kbps}",
                            bitrate_ladder={240: kbps})
        key = _stored_upload(settings, clip, "videos/ladder/source")
        result = await ActivityEnvironment().run(
            VideoActivities(settings).transcode_rendition,
            RenditionInput(video_id="ladder", source_key=key, height=240, has_audio=False,
                           duration=3.0))
        measured[kbps] = result.bitrate_kbps
    # x264's rate control keeps the average near the target, and never far above maxrate.
    assert measured[150] <= 150 * 1.5, measured
    assert measured[1200] >= 1200 / 2, measured


async def test_cancelling_transcribe_stops_whisper_mid_file(clips, five_sentences_wav, tmp_path,
                                                           whisper_settings, monkeypatch):
    """A cancel that reaches the transcribe activity while Whisper is mid-file stops Whisper
    at its next segment (it does not run on to the end), and the activity ends cancelled."""
    import threading

    from temporalio.testing import ActivityEnvironment

    from activities.video import VideoActivities
    from spool.models.video import TranscribeInput

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
            segments = real_transcribe(wav, cancel_event=cancel_event,
                                       on_segment=segment_then_cancel, **kw)
        except whisper.TranscriptionCancelled:
            outcome.append("cancelled")
            raise
        outcome.append(f"finished with {len(segments)} segments")
        return segments

    monkeypatch.setattr(whisper, "transcribe", held_after_first_segment)
    with pytest.raises(asyncio.CancelledError):
        await env.run(VideoActivities(settings).transcribe,
                      TranscribeInput(video_id="cancel", audio_key=key, duration=14.0))
    assert outcome == ["cancelled"] and len(seen) == 1
