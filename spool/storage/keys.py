"""Where each file of a job lives in object storage: the one place that knows the key layout.

Keys are made by Spool from ids it generated, never from a client's file name.
"""

from __future__ import annotations

VIDEOS = "videos"


def video_prefix(video_id: str) -> str:
    """Every object of one video lives under this prefix (deleting it removes the video)."""
    return f"{VIDEOS}/{video_id}/"


def source_key(video_id: str) -> str:
    """The upload, exactly as received."""
    return f"{video_prefix(video_id)}source"


def rendition_key(video_id: str, name: str) -> str:
    """A progressive MP4 rendition, ``name`` like ``720p``."""
    return f"{video_prefix(video_id)}{name}.mp4"


def poster_key(video_id: str) -> str:
    return f"{video_prefix(video_id)}poster.jpg"


def audio_key(video_id: str) -> str:
    """The intermediate 16 kHz mono WAV handed from extract_audio to transcribe."""
    return f"{video_prefix(video_id)}audio.16k.wav"


def captions_key(video_id: str, language: str, fmt: str) -> str:
    """Captions as ``vtt`` or ``srt``."""
    return f"{video_prefix(video_id)}captions.{language}.{fmt}"


def transcript_key(video_id: str, language: str) -> str:
    return f"{video_prefix(video_id)}transcript.{language}.json"
