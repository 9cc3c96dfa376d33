"""Video pipeline cost on this machine, in one run: Spool end to end against the best plain
script of the same tools, and captions speed against raw faster-whisper.

    .venv/bin/python bench/video.py [--seconds 60]
    .venv/bin/python bench/video.py --storage   # only: local directory vs S3, same run
    .venv/bin/python bench/video.py --playable --seconds 600 --rounds 1
                                                # only: time to playable, and to ready
                                                # with and without live playlists

1. Spool: a dev server (temp SQLite db, free port), a real ``worker.py`` process on every
   queue, ``ingest_video`` + ``start_video_job``, wait for the result (chunks, audio, MP4 +
   HLS per rendition, storyboard, poster, captions). Plain: the best arrangement of the same
   tools in one script — probe, then one ffmpeg decoding once for every rendition
   (``bench/plain.py``) beside the poster and the captions (16 kHz audio, then raw
   faster-whisper with its model loaded beforehand, as a captions worker has it).
2. Captions speed (audio seconds / transcription seconds): Spool's ``video.transcribe``
   activity (scheduled -> completed, from the child workflow's history) against raw
   faster-whisper on the same WAV, same model, compute type and decoding options, each under
   the contention of its own run's encoding.

Phases run one after another (Spool, plain, Whisper alone); each prints the CPU time other
processes and the hypervisor (steal) took meanwhile, since on a shared machine that, not
Spool, is what usually moves a figure.

The generated clip (testsrc2 1920x1080 30 fps + looped espeak-ng speech) is cached in
``.cache/bench/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.history import activity_runs  # noqa: E402
from bench.plain import transcode_ladder  # noqa: E402
from devstack.proc import free_port, start_process, stop_process, wait_until  # noqa: E402
from devstack.temporal import DevServer  # noqa: E402
from spool import whisper  # noqa: E402
from spool.config import Settings  # noqa: E402
from spool.db import get_engine  # noqa: E402
from spool.db.video import ensure_video  # noqa: E402
from spool.ingest import ingest_video, start_video_job  # noqa: E402
from spool.media.audio import extract_audio_16k_mono  # noqa: E402
from spool.media.chunks import RenditionSpec  # noqa: E402
from spool.media.poster import extract_poster  # noqa: E402
from spool.media.probe import probe  # noqa: E402
from spool.media.tools import Limits, MediaError  # noqa: E402
from spool.models.captions import CaptionsInput, captions_workflow_id  # noqa: E402
from spool.models.video import ProbeResult, VideoStatus, plan_rungs, rendition_name  # noqa: E402
from spool.process import single_threaded_blas, with_parent_death  # noqa: E402
from spool.temporal import connect, exit_process  # noqa: E402
from worker import default_concurrency  # noqa: E402

CACHE = REPO / ".cache" / "bench"
HISTORIES = CACHE / "histories"
SPEECH = (
    "Spool runs the background work of a media and publishing product as durable workflows. "
    "A client hands work over and gets a job identifier back at once. Worker processes do the "
    "heavy steps at their own pace, and each step retries on its own, so one failing step "
    "never repeats or blocks another. An upload is stored, then probed, transcoded to a "
    "ladder of renditions, given a poster image, captioned with Whisper, recorded, and the "
    "owner is notified. Until it is done the user sees processing with progress for every "
    "step. The captions appear when the captions branch finishes, even if transcoding is "
    "still running. "
)


# --- the clip --------------------------------------------------------------------------------


def make_clip(seconds: float) -> Path:
    clip = CACHE / f"speech-1080p30-{int(seconds)}s.mp4"
    if clip.exists():
        return clip
    CACHE.mkdir(parents=True, exist_ok=True)
    wav = CACHE / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-s", "150", "-w", str(wav), SPEECH],
        check=True,
        capture_output=True,
        timeout=120,
    )
    tmp = clip.with_suffix(".tmp.mp4")
    # A camera-like upload: High profile CABAC H.264 (not ultrafast, which is cheap to decode)
    # and AAC speech looped to the full length.
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-stream_loop",
            "-1",
            "-i",
            str(wav),
            "-t",
            f"{seconds}",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ar",
            "48000",
            "-ac",
            "2",
            str(tmp),
        ],
        check=True,
        capture_output=True,
        timeout=1200,
    )
    tmp.rename(clip)
    return clip


# --- plain script ----------------------------------------------------------------------------


def ladder_specs(
    out: Path, info: ProbeResult, heights: list[int], settings: Settings
) -> list[RenditionSpec]:
    """The plain script's renditions: Spool's heights and rates (the plan's own arithmetic,
    activities/video/common.py), one MP4 each in out."""
    from activities.video.common import rendition_rate

    return [
        RenditionSpec(out / f"{rendition_name(h)}.mp4", h, *rendition_rate(settings, h, info))
        for h in heights
    ]


def load_raw_model(settings: Settings):
    from faster_whisper import WhisperModel

    return WhisperModel(
        whisper.resolve_model(settings),
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        local_files_only=True,
    )


def raw_transcribe(model, wav: Path, settings: Settings) -> int:
    """faster-whisper with Spool's decoding options (spool.whisper.transcribe): voice
    activity detection, Whisper's guards and word timestamps, so the comparison measures
    what Spool adds around the same work."""
    segments, _info = model.transcribe(
        str(wav), language=settings.whisper_language, **whisper.PLAIN_OPTIONS
    )
    return sum(1 for s in segments if s.text.strip())


async def plain_pipeline(src: Path, out: Path, settings: Settings, model) -> dict:
    """The best arrangement of the same tools, as one plain script: probe, then ONE ffmpeg
    decoding once and encoding every rendition, beside the poster and the captions (16 kHz
    audio, then raw faster-whisper with the model already loaded, as Spool's captions worker
    has it loaded before the job arrives)."""
    limits = Limits.from_settings(settings)
    t0 = time.perf_counter()
    info = await probe(src)
    heights = plan_rungs(info.width, info.height)
    times: dict = {}

    async def ladder() -> None:
        specs = ladder_specs(out, info, heights, settings)
        t = time.perf_counter()
        await transcode_ladder(
            src,
            specs,
            audio_kbps=settings.audio_bitrate_kbps,
            preset=settings.x264_preset,
            has_audio=info.has_audio,
            duration=info.duration,
            limits=limits,
        )
        times["ladder"] = time.perf_counter() - t
        for spec in specs:
            made = await probe(spec.dst)
            assert made.height == spec.height and abs(made.duration - info.duration) < 0.2

    async def poster() -> None:
        await extract_poster(src, out / "poster.jpg", round(info.duration * 0.1, 3), limits)

    async def captions() -> None:
        wav = out / "audio.wav"
        await extract_audio_16k_mono(src, wav, duration=info.duration, limits=limits)
        t = time.perf_counter()
        times["segments"] = await asyncio.to_thread(raw_transcribe, model, wav, settings)
        times["transcribe"] = time.perf_counter() - t

    await asyncio.gather(ladder(), poster(), captions())
    times["total"] = time.perf_counter() - t0
    times["info"] = info
    return times


# --- Spool -----------------------------------------------------------------------------------


def start_worker(settings: Settings, log: Path, extra_env: dict[str, str] | None = None):
    env = {
        "SPOOL_TEMPORAL_ADDRESS": settings.temporal_address,
        "SPOOL_DATA_DIR": str(settings.data_dir),
        "HF_HUB_OFFLINE": "1",
        "SPOOL_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    proc = start_process([sys.executable, "worker.py"], log, env=env, cwd=REPO)
    wait_until(
        lambda: log.exists() and "worker ready" in log.read_text(), 120, proc, "bench worker", log
    )
    return proc


async def activity_seconds(handle, activity_type: str) -> tuple[float, float]:
    """(scheduled -> completed, scheduled -> started) of the last run of one activity, from
    the workflow history: the second is the time the task waited for a worker."""
    runs, _first, _last = await activity_runs(handle)
    run = [r for r in runs if r.activity_type == activity_type and r.ended is not None][-1]
    return run.ended - run.scheduled, run.started - run.scheduled


async def spool_pipeline(src: Path, tmp: Path, storage_env: dict[str, str] | None = None) -> dict:
    """One job end to end; ``storage_env`` (SPOOL_STORAGE_URL, SPOOL_S3_*) picks the store."""
    server = DevServer(
        port=free_port(),
        ui_port=None,
        db_filename=tmp / "temporal.db",
        log_path=tmp / "temporal.log",
    )
    storage_env = storage_env or {}
    with server:
        settings = Settings(
            temporal_address=server.address,
            data_dir=tmp / "data",
            **{k.removeprefix("SPOOL_").lower(): v for k, v in storage_env.items()},
        )
        worker = start_worker(settings, tmp / "worker.log", storage_env)
        try:
            client = await connect(settings, wait_seconds=30)
            t0 = time.perf_counter()
            inp = await asyncio.to_thread(ingest_video, settings, src, owner_id="bench")
            handle = await start_video_job(client, settings, inp)
            playable = asyncio.ensure_future(first_playable(handle, t0))
            status = await handle.result()
            total = time.perf_counter() - t0
            playable_seconds = await playable
            child = client.get_workflow_handle(captions_workflow_id(inp.video_id))
            transcribe, queued = await activity_seconds(child, "video.transcribe")
            ends = await branch_ends(handle, child)
            # Kept for a closer look (which activities took the time): .cache/bench/histories.
            HISTORIES.mkdir(parents=True, exist_ok=True)
            (HISTORIES / f"{tmp.name}.json").write_text((await handle.fetch_history()).to_json())
        finally:
            stop_process(worker)
    return {
        "total": total,
        "status": status,
        "transcribe": transcribe,
        "queued": queued,
        "playable": playable_seconds,
        "ends": ends,
    }


async def branch_ends(handle, captions) -> str:
    """When each branch of the job ended, in seconds from the job's start (what the time to
    ready waited for): the first chunk, the first publish, the last encode, the audio track,
    the transcription, the master playlist."""
    runs, first, _last = await activity_runs(handle)
    child_runs, _f, _l = await activity_runs(captions)

    def end(runs, pick) -> str:
        ended = [r.ended for r in runs if pick(r) and r.ended is not None]
        return f"{max(ended) - first:.1f}" if ended else "-"

    return ", ".join(
        f"{name} {at}"
        for name, at in (
            ("chunk 0", end(runs, lambda r: r.activity_id == "encode-00000")),
            ("playable", end(runs, lambda r: r.activity_id == "playable")),
            ("encodes", end(runs, lambda r: r.activity_id.startswith("encode-"))),
            ("audio", end(runs, lambda r: r.activity_id == "audio")),
            ("captions", end(child_runs, lambda r: r.activity_type == "video.transcribe")),
            ("hls", end(runs, lambda r: r.activity_id == "hls")),
        )
    )


async def first_playable(handle, t0: float) -> float | None:
    """Seconds from ``t0`` until the job's status first says it is playable (asked every
    0.2 s), or None if the job ended first."""
    while True:
        try:
            status = await handle.query("status", result_type=VideoStatus)
        except Exception:  # noqa: BLE001 - the job has ended (or not started): ask again
            status = None
        if status is not None and status.playable_at:
            return time.perf_counter() - t0
        if status is not None and status.state != "processing":
            return None
        await asyncio.sleep(0.2)


def with_sound(clip: Path, codec: str) -> Path:
    """The clip with its sound in ``codec`` (its pictures copied), in Matroska: an upload
    whose sound is not AAC, which the live playlists cannot copy. Cached beside the clip."""
    if codec == "aac":
        return clip
    out = clip.with_name(f"{clip.stem}-{codec}.mkv")
    if not out.exists():
        tmp = out.with_suffix(".tmp.mkv")
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-map", "0", "-c:v", "copy"]
            + ["-c:a", codec, str(tmp)],
            check=True,
            capture_output=True,
        )
        tmp.rename(out)
    return out


async def compare_playable(clip: Path, rounds: int, live_only: bool = False) -> None:
    """Time to playable and to ready with the live playlists, and to ready without them
    (SPOOL_PLAYABLE_RUNG=0, as before), alternated so drift on a shared machine hits both."""
    kinds = [("live", {}), ("without", {"SPOOL_PLAYABLE_RUNG": "0"})]
    with tempfile.TemporaryDirectory(prefix="spool-bench-playable-") as tmpdir:
        tmp = Path(tmpdir)
        ready: dict[str, list[float]] = {"live": [], "without": []}
        playable: list[float] = []
        for i in range(rounds):
            for name, env in kinds[:1] if live_only else kinds:
                meter = CpuMeter()
                result = await spool_pipeline(clip, tmp / f"{name}-{i}", env)
                assert result["status"].state == "ready", result["status"]
                ready[name].append(result["total"])
                if name == "live":
                    assert result["playable"] is not None, "never playable"
                    playable.append(result["playable"])
                shown = f", playable at {result['playable']:.1f} s" if name == "live" else ""
                print(
                    f"  {name:7} round {i + 1}: ready at {result['total']:6.1f} s{shown} "
                    f"({meter.report()})\n    ended (s from the job's start): {result['ends']}",
                    flush=True,
                )
    live = min(ready["live"])
    if live_only:
        print(f"playable: {min(playable):.1f} s after the upload began (goal <= 30 s)")
        return
    without = min(ready["without"])
    print(
        f"playable: {min(playable):.1f} s after the upload began (goal <= 30 s); ready "
        f"{live:.1f} s against {without:.1f} s without live playlists (best of {rounds}): "
        f"{live / without:.3f} (goal <= 1.05)"
    )


# --- captions under one and the same contention ---------------------------------------------

RAW_WHISPER = """
import sys, time
from spool.process import single_threaded_blas
single_threaded_blas()
from bench.video import load_raw_model, raw_transcribe
from spool.config import Settings
settings = Settings()
model = load_raw_model(settings)
print("ready", flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    raw_transcribe(model, line.strip(), settings)
    print(f"{time.perf_counter() - t:.4f}", flush=True)
"""


async def background_ladder(src: Path, out: Path, settings: Settings) -> None:
    """The plain script's one-decode ladder, again and again until cancelled: the contention
    both transcriptions face (run_tool kills the ffmpeg on cancel)."""
    info = await probe(src)
    specs = ladder_specs(out, info, plan_rungs(info.width, info.height), settings)
    while True:
        await transcode_ladder(
            src,
            specs,
            audio_kbps=settings.audio_bitrate_kbps,
            preset=settings.x264_preset,
            has_audio=info.has_audio,
            duration=info.duration,
            limits=Limits.from_settings(settings),
        )


async def captions_same_contention(src: Path, wav: Path, tmp: Path, rounds: int) -> dict:
    """Spool's ``video.transcribe`` (a captions job on a warm ``worker.py``, scheduled ->
    completed) and raw faster-whisper (a warm process of its own, started the same way, the
    WAV on its disk), alternately, each while the same ladder encodes in the background."""
    server = DevServer(
        port=free_port(),
        ui_port=None,
        db_filename=tmp / "temporal.db",
        log_path=tmp / "temporal.log",
    )
    spool_times: list[float] = []
    raw_times: list[float] = []
    with server:
        settings = Settings(temporal_address=server.address, data_dir=tmp / "data")
        worker = start_worker(settings, tmp / "worker.log")
        raw = await asyncio.create_subprocess_exec(
            *with_parent_death([sys.executable, "-c", RAW_WHISPER]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            start_new_session=True,
        )
        ladder = None
        try:
            assert (await raw.stdout.readline()).strip() == b"ready"
            client = await connect(settings, wait_seconds=30)
            inp = await asyncio.to_thread(ingest_video, settings, src, owner_id="bench")
            await asyncio.to_thread(
                ensure_video, get_engine(settings), inp.video_id, "bench", "processing"
            )
            (tmp / "ladder").mkdir()
            ladder = asyncio.create_task(background_ladder(src, tmp / "ladder", settings))
            await asyncio.sleep(3)  # past the ladder's start-up, into its steady state
            for n in range(rounds):
                job = await client.start_workflow(
                    "CaptionsWorkflow",
                    CaptionsInput(
                        inp.video_id,
                        inp.source_key,
                        queue_pipeline=settings.queue_pipeline,
                        queue_captions=settings.queue_captions,
                    ),
                    id=f"bench-captions-{n}",
                    task_queue=settings.queue_pipeline,
                )
                await job.result()
                spool_times.append((await activity_seconds(job, "video.transcribe"))[0])
                raw.stdin.write(f"{wav}\n".encode())
                await raw.stdin.drain()
                raw_times.append(float(await raw.stdout.readline()))
        finally:
            if ladder is not None:
                ladder.cancel()
                with contextlib.suppress(asyncio.CancelledError, MediaError):
                    await ladder
            raw.kill()
            await raw.wait()
            stop_process(worker)
    return {
        "spool": statistics.median(spool_times),
        "raw": statistics.median(raw_times),
        "spool_all": spool_times,
        "raw_all": raw_times,
    }


# --- noise: other processes on the machine --------------------------------------------------


class CpuMeter:
    """CPU seconds the whole machine spent busy vs. what this bench's process tree spent.

    The difference is someone else's work (or the hypervisor's: steal) during a phase; on a
    shared 2-core machine it is what makes one phase slower than another for no own reason.
    """

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK")
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        busy = (user + nice + system + irq + softirq) / self.tick
        own = sum(
            getattr(resource.getrusage(who), f)
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            for f in ("ru_utime", "ru_stime")
        )
        return busy, own, steal / self.tick

    def report(self) -> str:
        busy, own, steal = (b - a for a, b in zip(self.start, self._sample(), strict=True))
        return f"other processes {max(0.0, busy - own):.0f} core-s, steal {steal:.0f} s"


# --- main ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


async def compare_storage(clip: Path, rounds: int) -> None:
    """The same job on the local directory and on S3 (S3Proxy on this machine), alternated
    so that drift on a shared machine hits both; best of ``rounds`` each."""
    from devstack.s3proxy import S3ProxyServer, create_bucket

    with tempfile.TemporaryDirectory(prefix="spool-bench-storage-") as tmpdir:
        tmp = Path(tmpdir)
        s3 = S3ProxyServer(tmp / "s3", free_port(), tmp / "s3proxy.log").start()
        try:
            create_bucket(s3, "bench")
            times: dict[str, list[float]] = {"local": [], "s3": []}
            for i in range(rounds):
                for name, env in (("local", {}), ("s3", s3.env("bench", f"round{i}"))):
                    meter = CpuMeter()
                    result = await spool_pipeline(clip, tmp / f"{name}-{i}", env)
                    assert result["status"].state == "ready", result["status"]
                    times[name].append(result["total"])
                    print(
                        f"  {name:5} round {i + 1}: {result['total']:6.1f} s ({meter.report()})",
                        flush=True,
                    )
        finally:
            s3.stop()
    local, s3_best = min(times["local"]), min(times["s3"])
    print(
        f"storage: S3 (S3Proxy, loopback) {s3_best:.1f} s vs local directory {local:.1f} s "
        f"(best of {rounds}): S3 / local = {s3_best / local:.3f} (goal <= 1.05)"
    )


async def main(args) -> None:
    settings = Settings()
    concurrency = default_concurrency(settings, "media")
    t = time.perf_counter()
    clip = make_clip(args.seconds)
    made = time.perf_counter() - t
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print(f"{ffmpeg_version()}")
    print(
        f"model: {whisper.resolve_model(settings)} ({settings.whisper_device}, "
        f"{settings.whisper_compute_type}); x264 preset {settings.x264_preset}; "
        f"media concurrency {concurrency}, captions concurrency "
        f"{default_concurrency(settings, 'captions')}"
    )
    print(
        f"clip: {clip.relative_to(REPO)} ({clip.stat().st_size / 1e6:.1f} MB"
        f"{f', generated in {made:.0f} s' if made > 1 else ', cached'})",
        flush=True,
    )
    if args.storage:
        await compare_storage(clip, args.rounds)
        return
    if args.playable:
        await compare_playable(with_sound(clip, args.sound), args.rounds, args.live_only)
        return
    with tempfile.TemporaryDirectory(prefix="spool-bench-video-") as tmpdir:
        tmp = Path(tmpdir)
        # Warm the page cache so neither side pays for the first read.
        clip.read_bytes()

        meter = CpuMeter()
        spool = await spool_pipeline(clip, tmp / "spool")
        status = spool["status"]
        print(
            f"Spool done in {spool['total']:.1f} s: {status.state} ({meter.report()})", flush=True
        )

        plain_dir = tmp / "plain"
        plain_dir.mkdir()
        model = await asyncio.to_thread(load_raw_model, settings)
        meter = CpuMeter()
        plain = await plain_pipeline(clip, plain_dir, settings, model)
        info = plain["info"]
        heights = plan_rungs(info.width, info.height)
        print(f"plain script done in {plain['total']:.1f} s ({meter.report()})", flush=True)

        # Raw faster-whisper alone (warm model), for reference.
        t = time.perf_counter()
        await asyncio.to_thread(raw_transcribe, model, plain_dir / "audio.wav", settings)
        quiet = time.perf_counter() - t
        del model
        meter = CpuMeter()
        same = await captions_same_contention(
            clip, plain_dir / "audio.wav", tmp / "same", args.captions_rounds
        )
        print(f"captions under one contention done ({meter.report()})", flush=True)

    audio = info.duration
    ratio = spool["total"] / plain["total"]
    print()
    print(
        f"1. end to end, {audio:.0f} s {info.width}x{info.height} clip with speech "
        f"({len(heights)} renditions + poster + captions)"
    )
    print(
        f"   Spool (ingest -> ready: chunks, audio, MP4 + HLS, storyboard, poster, captions;"
        f" dev server + worker.py): {spool['total']:7.1f} s"
    )
    print(
        f"   plain script (one-decode ladder || poster || raw faster-whisper): "
        f"{plain['total']:7.1f} s (ladder {plain['ladder']:.1f} s)"
    )
    print(f"   Spool / plain: {ratio:.3f} (goal <= 1.05)")
    if spool["playable"] is not None:
        print(f"   Spool playable (live playlist's first publish) at {spool['playable']:.1f} s")
    renditions = ", ".join(f"{r.name}" for r in status.renditions)
    print(
        f"   Spool renditions: {renditions}; captions {status.captions_state}; "
        f"hls {'yes' if status.hls else 'no'}; storyboard "
        f"{'yes' if status.storyboard else 'no'}"
    )
    print("2. captions speed (audio seconds / transcription seconds), same contention")
    print(
        f"   Spool video.transcribe activity (scheduled->completed, warm worker): "
        f"{audio / spool['transcribe']:6.1f}x real time ({spool['transcribe']:.2f} s, of "
        f"which {spool['queued'] * 1000:.0f} ms waiting for the captions worker)"
    )
    print(
        f"   raw faster-whisper in the plain script:  {audio / plain['transcribe']:6.1f}x "
        f"({plain['transcribe']:.2f} s)"
    )
    print(f"   Spool / raw speed: {plain['transcribe'] / spool['transcribe']:.3f} (goal >= 1.0)")
    print(f"   raw faster-whisper alone, warm model: {audio / quiet:6.1f}x ({quiet:.1f} s)")
    print(
        f"3. captions under one and the same contention (the one-decode ladder encoding in "
        f"the background), {len(same['spool_all'])} alternating rounds, medians"
    )
    print(
        f"   Spool video.transcribe (captions job, warm worker.py, scheduled->completed): "
        f"{audio / same['spool']:6.1f}x ({same['spool']:.2f} s; "
        f"{', '.join(f'{t:.2f}' for t in same['spool_all'])})"
    )
    print(
        f"   raw faster-whisper (warm process of its own): {audio / same['raw']:6.1f}x "
        f"({same['raw']:.2f} s; {', '.join(f'{t:.2f}' for t in same['raw_all'])})"
    )
    print(f"   Spool / raw speed: {same['raw'] / same['spool']:.3f} (goal >= 1.0)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--storage", action="store_true", help="only compare the local directory with S3 (S3Proxy)"
    )
    parser.add_argument(
        "--playable",
        action="store_true",
        help="only: time to playable and to ready, with and without live playlists "
        "(use with --seconds 600 for the 10-minute goal)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --storage or --playable")
    parser.add_argument(
        "--sound",
        default="aac",
        choices=["aac", "libopus", "libmp3lame"],
        help="with --playable: the upload's sound (other than AAC: in Matroska)",
    )
    parser.add_argument(
        "--live-only",
        action="store_true",
        help="with --playable: only the job with live playlists (time to playable)",
    )
    parser.add_argument(
        "--captions-rounds",
        type=int,
        default=3,
        help="alternating rounds of the same-contention captions comparison",
    )
    single_threaded_blas()  # as worker.py does, so the plain script runs Whisper the same way
    asyncio.run(main(parser.parse_args()))
    exit_process(0)
