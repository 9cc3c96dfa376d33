"""A captions worker loads its Whisper model once, when it starts, and every job reuses it.

The real ``worker.py`` runs in its own process, started through
tests/support/model_load_worker.py, which only registers a hook on ``spool.whisper``'s model
loads (printing one line per load) before handing over to ``worker.main``. Two real captions
jobs (``CaptionsWorkflow``: audio, Whisper, recorded) then run on it one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import uuid
import wave
from concurrent.futures import ThreadPoolExecutor

import pytest

from spool import whisper
from spool.config import Settings
from spool.db import get_engine
from spool.db.video import ensure_video
from spool.media.audio import extract_audio_16k_mono
from spool.media.tools import Limits
from spool.models import CaptionsInput, CaptionsResult, CaptionsState
from spool.storage import keys, open_storage
from tests.support import media_clips
from tests.support.model_load_worker import LOAD_LINE
from tests.support.paths import REPO
from tests.support.processes import spool_env, stop_worker

pytestmark = pytest.mark.e2e

SENTENCES = [
    "Hello world, this is a simple test.",
    "The weather is nice today.",
    "We are testing captions for videos.",
    "Each sentence should become a segment.",
    "This is the last sentence of the clip.",
]
READY_LINE = "worker ready"


class WorkerOutput:
    """Every line a worker process prints, read as it comes, so the pipe never fills."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self.changed.set()
        self.changed.set()

    async def wait_for(self, text: str, within: float) -> None:
        async with asyncio.timeout(within):
            while not any(text in line for line in self.lines):
                if self.task.done():
                    raise AssertionError("worker exited:\n" + "\n".join(self.lines))
                self.changed.clear()
                await self.changed.wait()

    def loads(self) -> int:
        return sum(line.startswith(LOAD_LINE) for line in self.lines)


@contextlib.asynccontextmanager
async def captions_worker(settings: Settings):
    """worker.py polling the pipeline and captions queues, in its own process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.model_load_worker",
        "--queue",
        "pipeline",
        "--queue",
        "captions",
        cwd=REPO,
        env=spool_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = WorkerOutput(proc)
    try:
        await output.wait_for(READY_LINE, within=120)
        yield output
    finally:
        if proc.returncode is None:
            await stop_worker(proc)
        await output.task


async def captions_job(client, settings: Settings, source_key: str, video_id: str):
    await asyncio.to_thread(ensure_video, get_engine(settings), video_id, "ada", "processing")
    return await client.execute_workflow(
        "CaptionsWorkflow",
        CaptionsInput(
            video_id=video_id,
            source_key=source_key,
            queue_pipeline=settings.queue_pipeline,
            queue_captions=settings.queue_captions,
        ),
        id=f"captions-warm-{video_id}",
        task_queue=settings.queue_pipeline,
        result_type=CaptionsResult,
    )


async def test_second_captions_job_on_a_warm_worker_loads_no_model(
    client, settings, clips, whisper_ready
):
    clip = media_clips.make_clip(clips / "warm.mp4", width=320, height=180, seconds=3)
    source_key = keys.source_key("warm-source")
    await asyncio.to_thread(open_storage(settings).put_file, clip, source_key)
    async with captions_worker(settings) as worker:
        # Loaded at start, before the worker said it was ready: no job pays for it.
        ready_at = next(i for i, line in enumerate(worker.lines) if READY_LINE in line)
        assert [line for line in worker.lines[:ready_at] if line.startswith(LOAD_LINE)], (
            "the model was not loaded at start:\n" + "\n".join(worker.lines)
        )
        assert worker.loads() == 1
        for n in (1, 2):
            result = await captions_job(
                client, settings, source_key, f"warm{n}-{uuid.uuid4().hex[:8]}"
            )
            assert result.state == CaptionsState.AVAILABLE, result
            heard = set(media_clips.normalized_words(result.excerpt or ""))
            assert heard & {"hello", "world", "simple", "test"}, result.excerpt
            assert worker.loads() == 1, f"job {n} loaded the model again:\n" + "\n".join(
                worker.lines
            )


def test_transcriptions_from_two_threads_share_the_model_and_agree(clips, whisper_ready):
    """A worker with SPOOL_CAPTIONS_CONCURRENCY > 1 transcribes on several activity threads
    with the one warm model: each gets the transcript it would get alone."""
    wav = media_clips.speech_wav(clips / "two-threads.wav")
    settings = Settings()
    alone = whisper.transcribe(wav, settings=settings)
    start = threading.Barrier(2)

    def transcribe_together() -> list[whisper.Segment]:
        start.wait(timeout=60)
        return whisper.transcribe(wav, settings=settings)

    with ThreadPoolExecutor(2) as pool:
        together = [
            f.result(timeout=240) for f in [pool.submit(transcribe_together) for _ in range(2)]
        ]
    assert alone and together == [alone, alone]


def test_long_audio_takes_the_batched_pipeline_with_the_same_words(
    clips, whisper_ready, monkeypatch
):
    """Audio of BATCHED_MIN_SECONDS or more goes through faster-whisper's batched, VAD-split
    pipeline (bench/whisper.py: faster there), with cue times inside each chunk; shorter
    audio is decoded plainly. The threshold is lowered so a short clip stands for long audio."""
    wav = media_clips.speech_wav(clips / "long-stand-in.wav", " ".join(SENTENCES))
    settings = Settings()
    batched_calls: list[str] = []
    batched_segments = whisper._batched_segments

    def spy(model, audio, language):
        batched_calls.append(str(wav))
        return batched_segments(model, audio, language)

    monkeypatch.setattr(whisper, "_batched_segments", spy)
    seconds = whisper.wav_seconds(wav)
    assert 5.0 < seconds < 30.0
    monkeypatch.setattr(whisper, "BATCHED_MIN_SECONDS", seconds + 1)
    plain = whisper.transcribe(wav, settings=settings)
    assert batched_calls == []
    monkeypatch.setattr(whisper, "BATCHED_MIN_SECONDS", seconds)
    batched = whisper.transcribe(wav, settings=settings)
    assert batched_calls == [str(wav)]
    words = media_clips.normalized_words
    heard = words(" ".join(s.text for s in batched))
    assert heard == words(" ".join(s.text for s in plain))
    assert {"world", "simple", "captions", "sentence", "segment"} <= set(heard)
    # A cue every sentence or two, as plain decoding makes them, not one per VAD chunk.
    assert len(batched) >= 3, batched
    assert all(0 <= s.start < s.end <= seconds + 0.5 for s in batched), batched


async def test_the_extracted_wav_reaches_the_model_as_the_decoders_own_samples(clips, tmp_path):
    """The captions step's 16 kHz mono WAV is read straight into samples, bit for bit what
    faster-whisper's decoder makes of it, window after window with nothing lost or read
    twice; anything else is left to that decoder."""
    import numpy as np
    from faster_whisper.audio import decode_audio

    spoken = media_clips.speech_wav(clips / "samples-22k.wav")  # espeak-ng: 22.05 kHz
    wav = tmp_path / "audio.wav"
    await extract_audio_16k_mono(spoken, wav, limits=Limits())
    [(offset, samples)] = list(whisper.model_inputs(wav, 600))
    assert offset == 0.0 and isinstance(samples, np.ndarray) and samples.dtype == np.float32
    assert np.array_equal(samples, decode_audio(str(wav)))
    windows = list(whisper.model_inputs(wav, 1.0))
    assert len(windows) > 2 and all(len(w) <= 16000 for _, w in windows), len(windows)
    assert np.array_equal(np.concatenate([w for _, w in windows]), samples)
    starts = np.cumsum([0] + [len(w) for _, w in windows[:-1]]) / 16000
    assert [o for o, _ in windows] == list(starts)
    # A header claiming more than the file holds (written to a pipe) reads what is there.
    piped = tmp_path / "piped.wav"
    data = bytearray(wav.read_bytes())
    size_at = data.find(b"data") + 4
    data[size_at : size_at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    piped.write_bytes(bytes(data))
    [(_, read)] = list(whisper.model_inputs(piped, 600))
    assert np.array_equal(read, samples)
    assert list(whisper.model_inputs(spoken, 600)) == [(0.0, str(spoken))]  # for the decoder
    missing = tmp_path / "missing.wav"
    assert list(whisper.model_inputs(missing, 600)) == [(0.0, str(missing))]


def test_a_long_wav_is_read_a_bounded_window_at_a_time(tmp_path):
    """Twenty minutes of audio (77 MB as float32) never sit in memory whole: reading it in
    60 s windows holds at most a few windows' worth, whatever the file's length."""
    import tracemalloc

    import numpy as np

    wav = tmp_path / "twenty-minutes.wav"
    minute = (np.random.default_rng(7).standard_normal(60 * 16000) * 300).astype("<i2")
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        for _ in range(20):
            out.writeframes(minute.tobytes())
    window_bytes = 60 * 16000 * 4
    tracemalloc.start()
    try:
        given = 0  # samples
        for offset, samples in whisper.model_inputs(wav, 60):
            assert offset == given / 16000 and len(samples) <= 60 * 16000
            given += len(samples)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert given == 20 * 60 * 16000
    # The window handed on, the one the caller still holds, and the int16 read behind them:
    # a few windows, never the twenty of the whole file.
    assert peak < 5 * window_bytes, f"{peak / 1e6:.0f} MB held reading 60 s windows"


async def test_transcription_goes_window_by_window_with_times_in_the_whole(
    clips, whisper_ready, monkeypatch, tmp_path
):
    """With windows shorter than the clip, the model is given one window at a time; cue times
    count from the start of the file, and the words are those of the whole clip."""
    spoken = media_clips.speech_wav(clips / "windowed.wav", " ".join(SENTENCES))
    wav = tmp_path / "audio.wav"  # the captions step's 16 kHz mono WAV
    await extract_audio_16k_mono(spoken, wav, limits=Limits())
    seconds = whisper.wav_seconds(wav)
    whole = await asyncio.to_thread(whisper.transcribe, wav, settings=Settings())
    given: list[int] = []
    segments = whisper._segments

    def spy(model, audio, language, batched, wav_path):
        given.append(len(audio))
        return segments(model, audio, language, batched, wav_path)

    monkeypatch.setattr(whisper, "_segments", spy)
    windowed = await asyncio.to_thread(
        whisper.transcribe, wav, settings=Settings(whisper_window_seconds=seconds / 3)
    )
    assert len(given) >= 3 and max(given) <= seconds / 3 * 16000, given
    assert sum(given) == round(seconds * 16000)
    words = media_clips.normalized_words
    heard = words(" ".join(s.text for s in windowed))
    assert {"world", "simple", "videos", "segment", "last"} <= set(heard), heard
    assert len(heard) >= len(words(" ".join(s.text for s in whole))) - 2
    assert [s.start for s in windowed] == sorted(s.start for s in windowed)
    assert windowed[-1].end > 2 * seconds / 3 and windowed[-1].end <= seconds + 0.5


def main() -> int:
    """``python -m tests.test_whisper_warm WORKER-ARGS``: worker.py, each model load printed."""
    import worker

    whisper.on_model_load(lambda model: print(f"{LOAD_LINE} {model}", flush=True))
    return worker.main(sys.argv[1:])


if __name__ == "__main__":
    from spool.temporal import exit_process

    exit_process(main())
