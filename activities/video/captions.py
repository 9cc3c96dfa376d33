"""The captions branch (CaptionsWorkflow): the source's speech as a 16 kHz WAV, Whisper's
transcript of it as WebVTT, SRT and JSON, and the captions recorded on the video."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.video.common import heartbeating, scratch_dir
from spool import whisper
from spool.config import Settings
from spool.db import get_engine
from spool.db.video import replace_caption_segments, update_video
from spool.media import audio, tools
from spool.media import probe as probing
from spool.models.captions import (
    ExtractAudioInput,
    ExtractAudioResult,
    RecordCaptionsInput,
    TranscribeInput,
    TranscribeResult,
)
from spool.storage import keys
from spool.storage.transfers import Transfers

# How long a cancelled transcription is given to stop at its next segment.
WHISPER_STOP_SECONDS = 30


class CaptionsActivities:
    """``video.extract_audio``, ``video.transcribe`` and ``video.record_captions``; built
    once per worker."""

    def __init__(self, settings: Settings, files: Transfers) -> None:
        self.settings = settings
        self.files = files
        self.engine = get_engine(settings)
        # The captions' audio is waited for by a transcription: no lower priority for it.
        self.limits = dataclasses.replace(tools.Limits.from_settings(settings), nice=0)

    @activity.defn(name="video.extract_audio")
    async def extract_audio(self, inp: ExtractAudioInput) -> ExtractAudioResult:
        async with (
            heartbeating() as set_percent,
            scratch_dir() as tmp,
            self.files.source(inp.source_key, tmp) as src,
        ):
            info = await probing.probe(src)
            out = tmp / "audio.wav"
            # Never more than the probe allowed, whatever this file's header says now.
            checked = min(info.duration, self.settings.max_duration_seconds)
            await audio.extract_audio_16k_mono(
                src,
                out,
                duration=checked or None,
                limits=self.limits,
                on_progress=set_percent,
            )
            key = keys.audio_key(inp.video_id)
            await self.files.put_file(out, key)
        return ExtractAudioResult(audio_key=key, duration=info.duration)

    @activity.defn(name="video.transcribe")
    async def transcribe(self, inp: TranscribeInput) -> TranscribeResult:
        language = inp.language or self.settings.whisper_language
        async with heartbeating() as set_percent, scratch_dir() as tmp:
            wav = await self.files.fetch(inp.audio_key, tmp / "audio.wav")

            def on_segment(_seg: whisper.Segment, end: float) -> None:
                if inp.duration:
                    set_percent(min(99.0, end / inp.duration * 100))

            segments = await self._whisper(wav, language, on_segment)
            set_percent(100.0)
            stored = await self._store_captions(inp.video_id, language, segments)
        return TranscribeResult(
            vtt_key=stored["vtt"],
            srt_key=stored["srt"],
            transcript_key=stored["json"],
            segment_count=len(segments),
            language=language,
            excerpt=spoken_text(segments)[:300],
        )

    async def _whisper(
        self, wav: Path, language: str, on_segment: Callable[[whisper.Segment, float], None]
    ) -> list[whisper.Segment]:
        """Whisper's segments of the WAV, in a thread that a cancel stops."""
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            None,
            lambda: whisper.transcribe(
                wav,
                settings=self.settings,
                language=language,
                cancel_event=cancel,
                on_segment=on_segment,
            ),
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Whisper stops at the next segment; wait for it so the thread is not left
            # running, then let the cancel through.
            cancel.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(future), timeout=WHISPER_STOP_SECONDS)
            raise
        except FileNotFoundError as exc:
            raise ApplicationError(
                f"Whisper model unavailable: {exc}", type="WhisperModelMissing"
            ) from None

    async def _store_captions(
        self, video_id: str, language: str, segments: list[whisper.Segment]
    ) -> dict[str, str]:
        """The captions as WebVTT, SRT and a JSON transcript stored, and their segments
        recorded for search; format ("vtt", "srt", "json") → key."""
        transcript = {
            "language": language,
            "text": spoken_text(segments),
            "segments": [asdict(seg) for seg in segments],
        }
        files = {
            "vtt": (keys.captions_key(video_id, language, "vtt"), whisper.to_vtt(segments)),
            "srt": (keys.captions_key(video_id, language, "srt"), whisper.to_srt(segments)),
            "json": (
                keys.transcript_key(video_id, language),
                json.dumps(transcript, ensure_ascii=False, indent=1),
            ),
        }
        for key, text in files.values():
            await self.files.put_bytes(text.encode("utf-8"), key)
        await asyncio.to_thread(
            replace_caption_segments, self.engine, video_id, [asdict(seg) for seg in segments]
        )
        return {fmt: key for fmt, (key, _text) in files.items()}

    @activity.defn(name="video.record_captions")
    async def record_captions(self, inp: RecordCaptionsInput) -> None:
        values: dict[str, Any] = {
            "captions_state": str(inp.state),
            "captions_language": inp.language,
        }
        if inp.transcript is not None:
            t = inp.transcript
            values["captions"] = {
                "vtt": t.vtt_key,
                "srt": t.srt_key,
                "transcript": t.transcript_key,
                "segments": t.segment_count,
            }
        if inp.error:
            values["merge_errors"] = {"captions": inp.error}
        await asyncio.to_thread(update_video, self.engine, inp.video_id, **values)
        # The 16 kHz WAV only feeds Whisper: once the captions are written (or have failed for
        # good) it is dropped. A repeated delete is a no-op, so a retry is harmless; deleting
        # here rather than in video.transcribe keeps a retried transcribe able to read it.
        await self.files.call(self.files.storage.delete, keys.audio_key(inp.video_id))


def spoken_text(segments: list[whisper.Segment]) -> str:
    """What was said, as one line: the cues' text without their line breaks."""
    return " ".join(" ".join(seg.text.split()) for seg in segments)
