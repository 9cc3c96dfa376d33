"""Frame arithmetic of chunked encoding: which output frames a chunk encodes, which of them
start a segment (forced keyframes) or are a storyboard's thumbnails, all on one grid at the
output's constant frame rate, so chunks that share a boundary agree on it."""

from __future__ import annotations

import math
from fractions import Fraction

from spool.models.chunks import ChunkPlan

# A chunk starting this close to (or past) the end of the video stream (a clip whose audio
# outlasts its pictures) seeks back this far, so it has a last picture to hold; seeking to
# its own start would decode nothing and leave a hole in every rendition.
HOLD_LEAD_SECONDS = 1.0


def frame_rate(fps: float) -> Fraction:
    """fps as the exact rational ffmpeg is given (29.97002997 → 30000/1001)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def frame_at(seconds: float | Fraction, rate: Fraction) -> int:
    """The index of the output frame nearest to a time: chunks that share a boundary agree on
    it, so their frame counts add up to the whole clip's."""
    return round(Fraction(seconds) * rate)


def chunk_frames(chunk: ChunkPlan, rate: Fraction) -> range:
    """The global output frame indices this chunk encodes."""
    return range(frame_at(chunk.start, rate), frame_at(chunk.end, rate))


def keyframe_frames(chunk: ChunkPlan, rate: Fraction, segment_seconds: float) -> list[int]:
    """Chunk-local indices of the frames that start a segment: the first frame at or after
    each multiple of segment_seconds (source time) inside the chunk."""
    frames = chunk_frames(chunk, rate)
    first = math.ceil(Fraction(chunk.start) / Fraction(segment_seconds) - Fraction(1, 10**9))
    local: list[int] = []
    boundary = first
    while True:
        index = math.ceil(Fraction(boundary) * Fraction(segment_seconds) * rate)
        if index >= frames.stop:
            return local or [0]
        if index >= frames.start:
            local.append(index - frames.start)
        boundary += 1


def thumb_frames(chunk: ChunkPlan, rate: Fraction, every: float) -> dict[int, int]:
    """Global thumbnail number → chunk-local frame index, for thumbnails taken every ``every``
    seconds of source time from 0, whose nearest frame is in this chunk."""
    frames = chunk_frames(chunk, rate)
    step = Fraction(every)
    number = max(0, math.floor(Fraction(chunk.start) / step) - 1)
    found: dict[int, int] = {}
    while (index := frame_at(number * step, rate)) < frames.stop:
        if index >= frames.start:
            found[number] = index - frames.start
        number += 1
    return found


def lead_frames(chunk: ChunkPlan, rate: Fraction, video_end: float | None) -> int:
    """How many frames before its start a chunk is decoded from: none, unless the chunk
    starts within HOLD_LEAD_SECONDS of the video stream's end or past it; then from that
    far before the end, so the last picture is there to be held."""
    first = chunk_frames(chunk, rate).start
    if video_end is None or first / rate < video_end - HOLD_LEAD_SECONDS:
        return 0
    return max(0, first - math.floor(Fraction(max(0.0, video_end - HOLD_LEAD_SECONDS)) * rate))


def seek_seconds(first_frame: int, rate: Fraction) -> str:
    """The input seek to a chunk's first frame, rounded down to ffmpeg's microseconds: a
    seek a hair past the frame would drop it (ffmpeg keeps frames at or after the seek)."""
    micros = math.floor(Fraction(first_frame) / rate * 1_000_000)
    return f"{micros / 1_000_000:.6f}"
