"""Chunk planning for chunked encoding: where the source is cut in time, at what frame rate.

Pure arithmetic, no I/O and no clock: the workflow imports this inside the sandbox, and the
same duration must always give the same chunks (a replayed history plans them again).
No ``from __future__ import annotations`` (docs/ARCHITECTURE.md, "Boundary models").
"""

import math
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "ChunkPlan",
    "DEFAULT_FPS",
    "MAX_FPS",
    "output_fps",
    "plan_chunks",
    "snap_to_keyframes",
    "split_first_chunk",
]

# Without a usable rate from the probe, the output is what most cameras record.
DEFAULT_FPS = 30.0
# Above this, frames are dropped by a whole factor (120 → 60, 100 → 50): players and most
# screens show no more, and an integer factor keeps the motion cadence even.
MAX_FPS = 60.0
# A rate this close to a broadcast rate is that rate: a phone's "30 fps" variable-rate clip
# averages 29.7–29.98, and an even 30 (or exactly 30000/1001) keeps frame times exact.
STANDARD_RATES = (
    Fraction(12),
    Fraction(25, 2),
    Fraction(15),
    Fraction(24000, 1001),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
    Fraction(48),
    Fraction(50),
    Fraction(60000, 1001),
    Fraction(60),
)
SNAP_TOLERANCE = 0.015
# How many chunks a clip is spread over before chunks reach their minimum length, and the
# minimum as a share of the longest chunk: a 60 s clip still gets a few chunks to spread
# over media workers, a 10 s clip one (each chunk costs a process start and x264's warm-up).
TARGET_CHUNKS = 8
MIN_CHUNK_SHARE = 0.25
# The shortest first chunk split_first_chunk splits, in segments.
RAMP_FROM_SEGMENTS = 3
# Float noise in duration / segment (59.99999999 segments is 60).
EPSILON = 1e-9


@dataclass
class ChunkPlan:
    """One time chunk of the source: [start, end) in seconds of source time, index from 0.
    The one chunk type: planned here, kept in the job's history (EncodingPlan, ChunkInput),
    encoded by spool/media/chunks.py."""

    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def plan_chunks(
    duration: float,
    *,
    chunk_seconds: float,
    segment_seconds: float,
    target_chunks: int = TARGET_CHUNKS,
    min_chunk_seconds: float | None = None,
) -> list[ChunkPlan]:
    """The chunks covering [0, duration) exactly, in order.

    Every boundary is a multiple of ``segment_seconds``, so each chunk starts on a forced
    keyframe where an HLS segment starts. Chunk length is a whole number of segments: about
    duration / ``target_chunks``, but never shorter than ``min_chunk_seconds`` (default a
    quarter of ``chunk_seconds``, at least one segment) and never longer than
    ``chunk_seconds`` (whole segments, at least one). Short clips get one chunk,
    long clips many. The last chunk ends at ``duration``; a tail shorter than half a segment
    joins the chunk before it instead of being a chunk of (almost) no frames.
    """
    _require_positive("duration", duration)
    _require_positive("chunk_seconds", chunk_seconds)
    _require_positive("segment_seconds", segment_seconds)
    if target_chunks < 1:
        raise ValueError(f"target_chunks must be at least 1, got {target_chunks}")
    segments = _chunk_segments(
        duration, chunk_seconds, segment_seconds, target_chunks, min_chunk_seconds
    )
    step = segments * segment_seconds
    starts = [float(i * step) for i in range(max(1, math.ceil(duration / step - EPSILON)))]
    if len(starts) > 1 and duration - starts[-1] < segment_seconds / 2:
        starts.pop()
    ends = [*starts[1:], float(duration)]
    return [
        ChunkPlan(i, start, end) for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


def split_first_chunk(chunks: list[ChunkPlan], segment_seconds: float) -> list[ChunkPlan]:
    """The same chunks with the first one cut into chunks of 1, 2, 4… segments (the last
    takes the rest): the first picture of a long video is then out in the time of one
    segment, and each next chunk is at most twice as long as what plays before it. Chunks
    of one or two segments (a clip, spread over a few short chunks already) stay as they
    are: splitting them would cost process starts and win nothing."""
    if len(chunks) < 2 or chunks[0].duration < RAMP_FROM_SEGMENTS * segment_seconds - EPSILON:
        return chunks
    first = chunks[0]
    starts, size, at = [first.start], 1, first.start
    while at + size * segment_seconds < first.end - segment_seconds / 2 - EPSILON:
        at += size * segment_seconds
        starts.append(at)
        size *= 2
    ends = [*starts[1:], first.end]
    ramp = [
        ChunkPlan(i, start, end) for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]
    rest = [ChunkPlan(len(ramp) + i, c.start, c.end) for i, c in enumerate(chunks[1:])]
    return ramp + rest


def snap_to_keyframes(
    chunks: list[ChunkPlan], keyframes: list[float], *, fps: float, segment_seconds: float
) -> list[ChunkPlan]:
    """The same chunks with their inner boundaries moved onto keyframes of the source: a
    chunk that starts between keyframes is decoded from the keyframe before its start and
    those frames are thrown away (with x264's or a phone's default GOP, up to 8 s of decoding
    per chunk for nothing).

    Each boundary moves to the nearest keyframe within half a chunk of it, landing on the
    first output frame (at ``fps``) at or after that keyframe, so the chunk's input seek finds
    it. Without one (or when it would leave a chunk shorter than half a segment), the
    boundary stays where it was and that chunk decodes from the keyframe before: the number
    of chunks, which is how far a clip spreads over media workers, never drops. Segment
    keyframes stay on the segment grid: a chunk's first frame is one more keyframe, inside a
    segment. ``keyframes``: seconds from the source's start; none known (or one chunk) gives
    ``chunks`` back.
    """
    if len(chunks) < 2 or not keyframes:
        return chunks
    rate = Fraction(fps).limit_denominator(1001)
    duration = chunks[-1].end
    step = max(chunk.duration for chunk in chunks[:-1])
    shortest = segment_seconds / 2
    marks = sorted(k for k in keyframes if math.isfinite(k) and 0 < k < duration)
    starts = [chunks[0].start]

    def fits(t: float) -> bool:
        return t - starts[-1] >= shortest and duration - t >= shortest

    for before, chunk in zip(chunks, chunks[1:], strict=False):
        # Half a chunk either way; half the one before when that is shorter (the first
        # chunks of a video that plays early: split_first_chunk).
        reach, boundary = min(step, before.duration) / 2, chunk.start
        near = sorted(
            (k for k in marks if abs(k - boundary) <= reach), key=lambda k: abs(k - boundary)
        )
        snapped = [t for t in (_first_frame_at(k, rate) for k in near) if fits(t)]
        if snapped:
            starts.append(snapped[0])
        elif fits(boundary):
            starts.append(boundary)
    ends = [*starts[1:], duration]
    return [
        ChunkPlan(i, start, end) for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


def _first_frame_at(seconds: float, rate: Fraction) -> float:
    """The time of the first frame on the output grid at or after ``seconds`` (a keyframe
    time printed to the microsecond counts as on the frame it rounds to)."""
    frame = math.ceil(Fraction(seconds) * rate - Fraction(1, 1000))
    return float(Fraction(frame) / rate)


def _require_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def _chunk_segments(
    duration: float,
    chunk_seconds: float,
    segment_seconds: float,
    target_chunks: int,
    min_chunk_seconds: float | None,
) -> int:
    """How many whole segments one chunk (all but the last) spans."""
    longest = max(1, math.floor(chunk_seconds / segment_seconds + EPSILON))
    floor_seconds = (
        chunk_seconds * MIN_CHUNK_SHARE if min_chunk_seconds is None else min_chunk_seconds
    )
    shortest = min(longest, max(1, round(floor_seconds / segment_seconds)))
    total = max(1, math.ceil(duration / segment_seconds - EPSILON))
    wanted = math.ceil(total / target_chunks)
    return min(longest, max(shortest, wanted))


def output_fps(source_fps: float | None) -> float:
    """The constant frame rate every rendition is encoded at.

    The source's average rate (a variable-rate source becomes constant at its average),
    divided by the smallest whole factor that brings it to at most 60, then snapped to a
    common rate when within 1.5 % (else to a whole number), and 30 when the probe found no
    usable rate.
    """
    if source_fps is None or not math.isfinite(source_fps) or source_fps <= 0:
        return DEFAULT_FPS
    rate = Fraction(source_fps).limit_denominator(1001)
    if rate > MAX_FPS:
        rate /= math.ceil(rate / Fraction(MAX_FPS) - Fraction(EPSILON))
    nearest = min(STANDARD_RATES, key=lambda standard: abs(rate - standard))
    if abs(rate - nearest) <= nearest * Fraction(SNAP_TOLERANCE):
        return float(nearest)
    # Any other average (a variable-rate clip's 20.17) is rounded to whole frames per
    # second, so frame times stay simple fractions.
    return float(max(1, round(rate)))
