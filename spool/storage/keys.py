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


# --- chunked encoding: intermediates under work/, deleted once the job's outcome is recorded


def work_prefix(video_id: str) -> str:
    """Intermediate objects of a job (chunks, thumbnails): gone when the job has ended."""
    return f"{video_prefix(video_id)}work/"


def chunk_key(video_id: str, index: int, name: str) -> str:
    """One rendition's video-only MP4 of one time chunk, ``name`` like ``720p``."""
    return f"{work_prefix(video_id)}chunks/{index:05d}/{name}.mp4"


def keyframes_key(video_id: str) -> str:
    """Where the source's video keyframes are (JSON seconds), written by the probe so the
    plan can cut chunks on them."""
    return f"{work_prefix(video_id)}keyframes.json"


def thumbs_prefix(video_id: str) -> str:
    return f"{work_prefix(video_id)}thumbs/"


def thumb_key(video_id: str, chunk: int, number: int) -> str:
    """Storyboard thumbnail ``number`` (its time is ``number`` x the interval), made by chunk
    ``chunk``; keys sort in time."""
    return f"{thumbs_prefix(video_id)}{chunk:05d}/{number:06d}.jpg"


def audio_track_key(video_id: str) -> str:
    """The AAC track of the whole source, muxed into every rendition's MP4."""
    return f"{video_prefix(video_id)}audio.m4a"


LIVE_FOLDER = "live"


def hls_prefix(video_id: str) -> str:
    return f"{video_prefix(video_id)}hls/"


def hls_key(video_id: str, path: str) -> str:
    """An HLS file by its path relative to the master playlist (``720p/seg-00001.m4s``)."""
    return f"{hls_prefix(video_id)}{path}"


def hls_master_key(video_id: str) -> str:
    return hls_key(video_id, "master.m3u8")


def live_key(video_id: str, path: str) -> str:
    """A file of the live playlists, published while the job runs (``live/480p/index.m3u8``):
    under the HLS prefix, beside the full ladder that replaces them."""
    return hls_key(video_id, f"{LIVE_FOLDER}/{path}")


def live_master_key(video_id: str) -> str:
    return live_key(video_id, "master.m3u8")


def storyboard_vtt_key(video_id: str) -> str:
    return f"{video_prefix(video_id)}storyboard/storyboard.vtt"


def storyboard_sprite_key(video_id: str, number: int) -> str:
    return f"{video_prefix(video_id)}storyboard/{number}.jpg"


# --- resumable uploads: what an unfinished upload keeps in the store besides its parts


def upload_prefix(upload_id: str) -> str:
    """Everything an unfinished resumable upload keeps (gone once it completes or ends)."""
    return f"uploads/{upload_id}/"


def upload_tail_key(upload_id: str, offset: int) -> str:
    """The bytes short of a whole part an upload holds between requests, ending at
    ``offset``."""
    return f"{upload_prefix(upload_id)}tail-{offset:012d}"
