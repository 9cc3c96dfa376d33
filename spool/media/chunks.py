"""One time chunk of the source to every rendition, from one decode (issue 10).

Every rendition of every chunk is encoded at one constant frame rate with keyframes forced
on the same frames, the first frame at or after each segment boundary in source time, so
the renditions' keyframes line up (players switch between them at segment starts) and the
chunks join by stream copy (``join``). The chunk's thumbnails for the storyboard come from
the same decode.

The source is a hostile upload: every command reads it with ``tools.INPUT_OPTIONS`` and runs
through ``tools.run_tool`` (docs/ARCHITECTURE.md, "Untrusted input").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from spool.media import rates, tools
from spool.media.frames import (
    chunk_frames,
    frame_rate,
    keyframe_frames,
    lead_frames,
    seek_seconds,
    thumb_frames,
)
from spool.models.chunks import ChunkPlan

THUMB_NAME = "thumb-%06d.jpg"
THUMB_QUALITY = 4  # mjpeg q:v, 2 (best) .. 31: small sprites, still sharp
# A thumbnail's height for its fixed width, from the display aspect (anamorphic sources too).
THUMB_HEIGHT = "round(ow/dar/2)*2"
# Read past a chunk's end so the last output frame has its nearest source frame in view;
# the filter graph stops at the chunk's frame count, whatever the input still holds.
READ_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class RenditionSpec:
    """One rendition of a chunk: where it is written, its rung (the picture's short side),
    how many kbit/s of video (the ceiling of a constant quality ``crf``; without one, the
    fixed ladder's average: spool/media/rates.py)."""

    dst: str | Path
    height: int
    video_kbps: int
    crf: float | None = None

    @property
    def name(self) -> str:
        return f"{self.height}p"


@dataclass
class ChunkOutput:
    """What one chunk produced: rendition name ("720p") → video-only MP4 of this chunk, the
    chunk's thumbnails in time order, and the renditions that could not be encoded (name →
    error). ``thumbs_error`` says why a chunk that was asked for thumbnails has none."""

    files: dict[str, Path] = field(default_factory=dict)
    thumbs: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    thumbs_error: str | None = None


@dataclass(frozen=True)
class EncodeSetup:
    """Everything a chunk's ffmpeg commands share, worked out once (``encode_setup``)."""

    src: Path
    chunk: ChunkPlan
    rate: Fraction
    frames: int
    keyframes: list[int]
    thumbs: dict[int, int]
    thumb_width: int
    thumb_dir: Path | None
    preset: str
    segment_frames: int
    lead_frames: int = 0  # decoded before the chunk's first frame, then dropped

    def thumb_paths(self) -> list[Path]:
        if self.thumb_dir is None:
            return []
        return [self.thumb_dir / (THUMB_NAME % n) for n in sorted(self.thumbs)]


async def encode_chunk(
    src: Path,
    chunk: ChunkPlan,
    specs: list[RenditionSpec],
    *,
    fps: float,
    segment_seconds: float,
    preset: str,
    thumb_every: float | None,
    thumb_width: int,
    thumb_dir: Path | None,
    limits: tools.Limits,
    on_progress: tools.ProgressCallback | None,
) -> ChunkOutput:
    """Encode one chunk of ``src`` to every rendition in ``specs`` (video only) and its
    thumbnails, from one decode. If that ffmpeg fails, each rendition (and the thumbnails)
    is tried alone once; renditions that still fail are in ``failed``, unless all do: then
    MediaError. Cancelling kills the running ffmpeg (tools.run_tool)."""
    if not specs:
        raise ValueError("encode_chunk needs at least one rendition")
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds!r}")
    if thumb_every is not None and thumb_every <= 0:
        raise ValueError(f"thumb_every must be positive, got {thumb_every!r}")
    setup = encode_setup(
        src,
        chunk,
        fps=fps,
        segment_seconds=segment_seconds,
        preset=preset,
        thumb_every=thumb_every,
        thumb_width=thumb_width,
        thumb_dir=thumb_dir,
        video_end=await video_end(src, limits),
    )
    progress = on_progress or (lambda _p: None)
    try:
        await tools.run_tool(
            chunk_args(setup, specs, with_thumbs=True),
            limits,
            duration=chunk.duration,
            on_progress=progress,
        )
        return ChunkOutput(files={s.name: Path(s.dst) for s in specs}, thumbs=setup.thumb_paths())
    except tools.MediaTimeout:
        _clear_outputs(setup, specs)
        raise  # one at a time would only take longer still
    except tools.MediaError:
        _clear_outputs(setup, specs)
    return await _encode_each_alone(setup, specs, limits, progress)


def encode_setup(
    src: Path,
    chunk: ChunkPlan,
    *,
    fps: float,
    segment_seconds: float,
    preset: str,
    thumb_every: float | None,
    thumb_width: int,
    thumb_dir: Path | None,
    video_end: float | None = None,
) -> EncodeSetup:
    rate = frame_rate(fps)
    frames = len(chunk_frames(chunk, rate))
    if frames < 1:
        raise ValueError(
            f"chunk {chunk.index} ({chunk.start:.3f}–{chunk.end:.3f} s) is shorter "
            f"than one frame at {float(rate):.3f} fps"
        )
    thumbs = thumb_frames(chunk, rate, thumb_every) if thumb_every and thumb_dir else {}
    return EncodeSetup(
        src=Path(src),
        chunk=chunk,
        rate=rate,
        frames=frames,
        keyframes=keyframe_frames(chunk, rate, segment_seconds),
        thumbs=thumbs,
        thumb_width=thumb_width + thumb_width % 2,
        thumb_dir=thumb_dir,
        preset=preset,
        segment_frames=max(1, math.ceil(Fraction(segment_seconds) * rate)),
        lead_frames=lead_frames(chunk, rate, video_end),
    )


def video_end_args(src: str | Path) -> list[str]:
    """ffprobe of where the main video stream starts and lasts, and where the container
    starts."""
    return tools.ffprobe_argv(
        src,
        [
            "-select_streams",
            "V:0",
            "-show_entries",
            "stream=start_time,duration:format=start_time",
            "-of",
            "json",
        ],
    )


async def video_end(src: Path, limits: tools.Limits) -> float | None:
    """Where the main video stream ends on the output's time line (which starts at the
    earliest stream), or None when the container does not say."""
    try:
        data = json.loads(await tools.run_tool(video_end_args(src), limits) or "{}")
    except json.JSONDecodeError:
        return None
    streams = data.get("streams") or [{}]
    try:
        start = float(streams[0].get("start_time") or 0.0)
        origin = float((data.get("format") or {}).get("start_time") or 0.0)
        return start - origin + float(streams[0]["duration"])
    except (KeyError, TypeError, ValueError):
        return None


# --- the commands --------------------------------------------------------------------------


def chunk_args(setup: EncodeSetup, specs: list[RenditionSpec], *, with_thumbs: bool) -> list[str]:
    """ONE ffmpeg: decode the chunk once, split to every rendition (and the thumbnails)."""
    with_thumbs = with_thumbs and bool(setup.thumbs) and setup.thumb_dir is not None
    branches_needed = len(specs) + (1 if with_thumbs else 0)
    if branches_needed == 0:
        raise ValueError("nothing to encode: no renditions and no thumbnails")
    source = _chunk_input(setup)
    branches = source.split() if branches_needed > 1 else None
    outputs = []
    for i, spec in enumerate(specs):
        outputs.append(_video_output(branches[i] if branches else source, spec, setup))
    if with_thumbs:
        outputs.append(_thumb_output(branches[len(specs)] if branches else source, setup))
    return tools.ffmpeg_argv(ffmpeg.merge_outputs(*outputs))


def _chunk_input(setup: EncodeSetup) -> Any:
    """The source at the chunk's first frame, at the output rate, exactly the chunk's frames
    long: a frame the source lacks at the end (the video ends before the audio, or a
    variable-rate gap) is the last one repeated. The seek lands on the output's frame grid
    (``lead_frames`` before the chunk when it must find a picture to hold), so the frames
    kept are the ones a single pass over the whole source would show."""
    first = chunk_frames(setup.chunk, setup.rate).start
    decoded = setup.lead_frames + setup.frames
    seconds = float(decoded / setup.rate)
    inp = ffmpeg.input(
        tools.file_url(setup.src),
        ss=seek_seconds(first - setup.lead_frames, setup.rate),
        t=tools.seconds_arg(seconds + READ_MARGIN_SECONDS),
        **tools.INPUT_OPTIONS,
    )
    return (
        inp["v:0"]
        .filter("fps", fps=str(setup.rate), start_time=0)
        .filter("tpad", stop_mode="clone", stop_duration=tools.seconds_arg(seconds))
        .filter("trim", start_frame=setup.lead_frames, end_frame=decoded)
        .filter("setpts", "PTS-STARTPTS")
    )


def scale_to_rung(stream: Any, rung: int) -> Any:
    """The picture scaled so its short side is ``rung`` pixels: the height of a landscape (or
    square) picture, the width of a portrait one. The long side follows the source's DISPLAY
    aspect (dar = storage aspect x sample aspect), rounded to even, so that square output
    pixels (setsar=1) show the picture undistorted; the decoder has already turned a rotated
    phone video upright, so dar is the aspect a viewer sees."""
    landscape = "gte(dar,1)"
    width = f"if({landscape},round({rung}*dar/2)*2,{rung})"
    height = f"if({landscape},{rung},round({rung}/dar/2)*2)"
    return stream.filter("scale", width, height).filter("setsar", 1)


def _video_output(stream: Any, spec: RenditionSpec, setup: EncodeSetup) -> Any:
    # By frame number, not time: ffmpeg rounds a listed time to the encoder's time base,
    # which can land a keyframe one frame early. These are the only keyframes: scene cuts
    # are off and the GOP cap is one frame longer than a segment (a 2 s segment at 29.97 fps
    # is 59 or 60 frames), so x264 never adds one of its own, yet no GOP outlasts a segment.
    keyframes = "expr:" + "+".join(f"eq(n,{k})" for k in setup.keyframes)
    scaled = scale_to_rung(stream, spec.height)
    return scaled.output(
        tools.file_url(spec.dst),
        vcodec="libx264",
        preset=setup.preset,
        pix_fmt="yuv420p",
        **{
            **rates.x264_rate_options(spec.video_kbps, spec.crf, setup.chunk.duration),
            "force_key_frames": keyframes,
            "g": setup.segment_frames + 1,
            "sc_threshold": 0,
            "fps_mode": "passthrough",
        },
        an=None,
        map_metadata=-1,
        format="mp4",
    )


def _thumb_output(stream: Any, setup: EncodeSetup) -> Any:
    assert setup.thumb_dir is not None
    picks = "+".join(f"eq(n,{k})" for k in setup.thumbs.values())
    return (
        stream.filter("select", picks)
        .filter("scale", setup.thumb_width, THUMB_HEIGHT)
        .filter("setsar", 1)
        .output(
            tools.file_url(setup.thumb_dir / THUMB_NAME),
            vcodec="mjpeg",
            format="image2",
            start_number=min(setup.thumbs),
            **{"q:v": THUMB_QUALITY, "fps_mode": "passthrough"},
        )
    )


# --- when the shared decode fails ----------------------------------------------------------


def _clear_outputs(setup: EncodeSetup, specs: list[RenditionSpec]) -> None:
    for spec in specs:
        tools.remove(Path(spec.dst))
    for thumb in setup.thumb_paths():
        tools.remove(thumb)


async def _encode_each_alone(
    setup: EncodeSetup,
    specs: list[RenditionSpec],
    limits: tools.Limits,
    progress: tools.ProgressCallback,
) -> ChunkOutput:
    """The fallback after the shared ffmpeg failed: one ffmpeg per rendition, so a rendition
    that cannot be made (its output unwritable, an encoder refusing its size) costs only
    itself."""
    out = ChunkOutput()
    for done, spec in enumerate(specs):

        def part(percent: float, done: int = done) -> None:
            progress((done + percent / 100.0) / len(specs) * 100.0)

        try:
            await tools.run_tool(
                chunk_args(setup, [spec], with_thumbs=False),
                limits,
                duration=setup.chunk.duration,
                on_progress=part,
            )
            out.files[spec.name] = Path(spec.dst)
        except tools.MediaError as exc:
            tools.remove(Path(spec.dst))
            out.failed[spec.name] = str(exc)
    if not out.files:
        raise tools.MediaError(
            f"chunk {setup.chunk.index}: no rendition could be encoded: "
            + "; ".join(f"{name}: {error}" for name, error in out.failed.items())
        )
    if setup.thumbs:
        out.thumbs, out.thumbs_error = await _thumbs_alone(setup, limits)
    return out


async def _thumbs_alone(setup: EncodeSetup, limits: tools.Limits) -> tuple[list[Path], str | None]:
    try:
        await tools.run_ffmpeg(chunk_args(setup, [], with_thumbs=True), limits)
        return setup.thumb_paths(), None
    except tools.MediaError as exc:
        for thumb in setup.thumb_paths():
            tools.remove(thumb)
        return [], str(exc)
