"""Chunked encoding: one decode per time chunk feeds every rendition; chunks are joined
without re-encoding, packaged as HLS, and tiled into storyboards (issue 10).

Every rendition of every chunk is encoded at one constant frame rate with keyframes forced
on the same frames, the first frame at or after each segment boundary in source time, so
the renditions' keyframes line up (players switch between them at segment starts) and the
chunks join by stream copy. Audio is encoded once for the whole source: AAC per chunk
would put an encoder-priming gap at every chunk boundary.

Every ffmpeg runs through ``media.run_tool`` with the hardened input options: the source
is a hostile upload (docs/ARCHITECTURE.md, "Untrusted input"). The intermediate files
(chunks, thumbnails) are Spool's own, and are read with whitelists naming only the formats
Spool wrote.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import ffmpeg

from spool import media
from spool.models.chunks import ChunkSpan

__all__ = [
    "ChunkOutput",
    "HlsAudio",
    "HlsVariant",
    "Storyboard",
    "encode_audio",
    "encode_chunk",
    "join_chunks",
    "keyframe_times",
    "make_storyboard",
    "master_playlist",
    "package_audio_hls",
    "package_hls",
]

ProgressCallback = Callable[[float], None]

# Demuxers for Spool's own intermediate files: the chunk list (concat) and the MP4/M4A files
# it names; the thumbnails a storyboard tiles.
OWN_MP4_INPUT = {"protocol_whitelist": "file", "format_whitelist": "mov,mp4,m4a,3gp,3g2,mj2"}
OWN_CONCAT_INPUT = {
    "protocol_whitelist": "file",
    "format_whitelist": "concat,mov,mp4,m4a,3gp,3g2,mj2,image2,jpeg_pipe",
}
THUMB_FORMATS = "image2,jpeg_pipe"
THUMB_NAME = "thumb-%06d.jpg"
THUMB_QUALITY = 4  # mjpeg q:v, 2 (best) .. 31: small sprites, still sharp
# A thumbnail's height for its fixed width, from the display aspect (anamorphic sources too).
THUMB_HEIGHT = "round(ow/dar/2)*2"
# Read past a chunk's end so the last output frame has its nearest source frame in view;
# the filter graph stops at the chunk's frame count, whatever the input still holds.
READ_MARGIN_SECONDS = 1.0
# A chunk starting this close to (or past) the end of the video stream (a clip whose audio
# outlasts its pictures) seeks back this far, so it has a last picture to hold; seeking to
# its own start would decode nothing and leave a hole in every rendition.
HOLD_LEAD_SECONDS = 1.0


# --- frame arithmetic ----------------------------------------------------------------------


def frame_rate(fps: float) -> Fraction:
    """fps as the exact rational ffmpeg is given (29.97002997 → 30000/1001)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def frame_at(seconds: float, rate: Fraction) -> int:
    """The index of the output frame nearest to a time: chunks that share a boundary agree on
    it, so their frame counts add up to the whole clip's."""
    return round(Fraction(seconds) * rate)


def chunk_frames(span: ChunkSpan, rate: Fraction) -> range:
    """The global output frame indices this chunk encodes."""
    return range(frame_at(span.start, rate), frame_at(span.end, rate))


def keyframe_frames(span: ChunkSpan, rate: Fraction, segment_seconds: float) -> list[int]:
    """Chunk-local indices of the frames that start a segment: the first frame at or after
    each multiple of segment_seconds (source time) inside the chunk."""
    frames = chunk_frames(span, rate)
    first = math.ceil(Fraction(span.start) / Fraction(segment_seconds) - Fraction(1, 10**9))
    local: list[int] = []
    boundary = first
    while True:
        index = math.ceil(Fraction(boundary) * Fraction(segment_seconds) * rate)
        if index >= frames.stop:
            return local or [0]
        if index >= frames.start:
            local.append(index - frames.start)
        boundary += 1


def thumb_frames(span: ChunkSpan, rate: Fraction, every: float) -> dict[int, int]:
    """Global thumbnail number → chunk-local frame index, for thumbnails taken every ``every``
    seconds of source time from 0, whose nearest frame is in this chunk."""
    frames = chunk_frames(span, rate)
    step = Fraction(every)
    number = max(0, math.floor(Fraction(span.start) / step) - 1)
    found: dict[int, int] = {}
    while (index := frame_at(number * step, rate)) < frames.stop:
        if index >= frames.start:
            found[number] = index - frames.start
        number += 1
    return found


def _seek_seconds(first_frame: int, rate: Fraction) -> str:
    """The input seek to a chunk's first frame, rounded down to ffmpeg's microseconds: a
    seek a hair past the frame would drop it (ffmpeg keeps frames at or after the seek)."""
    micros = math.floor(Fraction(first_frame) / rate * 1_000_000)
    return f"{micros / 1_000_000:.6f}"


def _seconds(value: float) -> str:
    return f"{value:.6f}"


# --- encode_chunk --------------------------------------------------------------------------


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
class _ChunkPlan:
    """Everything the chunk's ffmpeg commands share, worked out once."""

    src: Path
    span: ChunkSpan
    rate: Fraction
    frames: int
    keyframes: list[int]
    thumbs: dict[int, int]
    thumb_width: int
    thumb_dir: Path | None
    preset: str
    segment_frames: int
    lead_frames: int = 0  # decoded before the chunk's first frame, then dropped


def rendition_name_of(spec: media.RenditionSpec) -> str:
    return f"{spec.height}p"


def _chunk_input(plan: _ChunkPlan):
    """The source at the chunk's first frame, at the output rate, exactly the chunk's frames
    long: a frame the source lacks at the end (the video ends before the audio, or a
    variable-rate gap) is the last one repeated. The seek lands on the output's frame grid
    (``lead_frames`` before the chunk when it must find a picture to hold), so the frames
    kept are the ones a single pass over the whole source would show."""
    first = chunk_frames(plan.span, plan.rate).start
    decoded = plan.lead_frames + plan.frames
    seconds = float(decoded / plan.rate)
    inp = ffmpeg.input(
        media.file_url(plan.src),
        ss=_seek_seconds(first - plan.lead_frames, plan.rate),
        t=_seconds(seconds + READ_MARGIN_SECONDS),
        **media.INPUT_OPTIONS,
    )
    return (
        inp["v:0"]
        .filter("fps", fps=str(plan.rate), start_time=0)
        .filter("tpad", stop_mode="clone", stop_duration=_seconds(seconds))
        .filter("trim", start_frame=plan.lead_frames, end_frame=decoded)
        .filter("setpts", "PTS-STARTPTS")
    )


def _video_output(stream, spec: media.RenditionSpec, plan: _ChunkPlan):
    # By frame number, not time: ffmpeg rounds a listed time to the encoder's time base,
    # which can land a keyframe one frame early. These are the only keyframes: scene cuts
    # are off and the GOP cap is one frame longer than a segment (a 2 s segment at 29.97 fps
    # is 59 or 60 frames), so x264 never adds one of its own, yet no GOP outlasts a segment.
    keyframes = "expr:" + "+".join(f"eq(n,{k})" for k in plan.keyframes)
    scaled = stream.filter("scale", media.DISPLAY_WIDTH, spec.height).filter("setsar", 1)
    kbps = spec.video_kbps
    return scaled.output(
        media.file_url(spec.dst),
        vcodec="libx264",
        preset=plan.preset,
        pix_fmt="yuv420p",
        **{
            "b:v": f"{kbps}k",
            "maxrate": f"{int(kbps * 1.5)}k",
            "bufsize": f"{kbps * 2}k",
            "force_key_frames": keyframes,
            "g": plan.segment_frames + 1,
            "sc_threshold": 0,
            "fps_mode": "passthrough",
        },
        an=None,
        map_metadata=-1,
        format="mp4",
    )


def _thumb_output(stream, plan: _ChunkPlan):
    assert plan.thumb_dir is not None
    picks = "+".join(f"eq(n,{k})" for k in plan.thumbs.values())
    return (
        stream.filter("select", picks)
        .filter("scale", plan.thumb_width, THUMB_HEIGHT)
        .filter("setsar", 1)
        .output(
            media.file_url(plan.thumb_dir / THUMB_NAME),
            vcodec="mjpeg",
            format="image2",
            start_number=min(plan.thumbs),
            **{"q:v": THUMB_QUALITY, "fps_mode": "passthrough"},
        )
    )


def chunk_args(
    plan: _ChunkPlan, specs: list[media.RenditionSpec], *, with_thumbs: bool
) -> list[str]:
    """ONE ffmpeg: decode the chunk once, split to every rendition (and the thumbnails)."""
    with_thumbs = with_thumbs and bool(plan.thumbs) and plan.thumb_dir is not None
    branches_needed = len(specs) + (1 if with_thumbs else 0)
    if branches_needed == 0:
        raise ValueError("nothing to encode: no renditions and no thumbnails")
    source = _chunk_input(plan)
    branches = source.split() if branches_needed > 1 else None
    outputs = []
    for i, spec in enumerate(specs):
        outputs.append(_video_output(branches[i] if branches else source, spec, plan))
    if with_thumbs:
        outputs.append(_thumb_output(branches[len(specs)] if branches else source, plan))
    return media._compile(ffmpeg.merge_outputs(*outputs))


def _make_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _remove(path: Path) -> None:
    """Delete a (partial) output; one whose folder is missing or a file was never written."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _thumb_paths(plan: _ChunkPlan) -> list[Path]:
    if plan.thumb_dir is None:
        return []
    return [plan.thumb_dir / (THUMB_NAME % n) for n in sorted(plan.thumbs)]


def _clear_outputs(plan: _ChunkPlan, specs: list[media.RenditionSpec]) -> None:
    for spec in specs:
        _remove(Path(spec.dst))
    for thumb in _thumb_paths(plan):
        _remove(thumb)


async def encode_chunk(
    src: Path,
    span: ChunkSpan,
    specs: list[media.RenditionSpec],
    *,
    fps: float,
    segment_seconds: float,
    preset: str,
    thumb_every: float | None,
    thumb_width: int,
    thumb_dir: Path | None,
    limits: media.Limits,
    on_progress: ProgressCallback | None,
) -> ChunkOutput:
    """Encode one chunk of ``src`` to every rendition in ``specs`` (video only) and its
    thumbnails, from one decode. If that ffmpeg fails, each rendition (and the thumbnails)
    is tried alone once; renditions that still fail are in ``failed``, unless all do: then
    MediaError. Cancelling kills the running ffmpeg (media.run_tool)."""
    if not specs:
        raise ValueError("encode_chunk needs at least one rendition")
    if segment_seconds <= 0:
        raise ValueError(f"segment_seconds must be positive, got {segment_seconds!r}")
    if thumb_every is not None and thumb_every <= 0:
        raise ValueError(f"thumb_every must be positive, got {thumb_every!r}")
    plan = _chunk_plan(
        src,
        span,
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
        await media.run_tool(
            chunk_args(plan, specs, with_thumbs=True),
            limits,
            duration=span.duration,
            on_progress=progress,
        )
        return ChunkOutput(
            files={rendition_name_of(s): Path(s.dst) for s in specs}, thumbs=_thumb_paths(plan)
        )
    except media.MediaTimeout:
        _clear_outputs(plan, specs)
        raise  # one at a time would only take longer still
    except media.MediaError:
        _clear_outputs(plan, specs)
    return await _encode_each_alone(plan, specs, limits, progress)


def _chunk_plan(
    src: Path,
    span: ChunkSpan,
    *,
    fps: float,
    segment_seconds: float,
    preset: str,
    thumb_every: float | None,
    thumb_width: int,
    thumb_dir: Path | None,
    video_end: float | None = None,
) -> _ChunkPlan:
    rate = frame_rate(fps)
    frames = len(chunk_frames(span, rate))
    if frames < 1:
        raise ValueError(
            f"chunk {span.index} ({span.start:.3f}–{span.end:.3f} s) is shorter "
            f"than one frame at {float(rate):.3f} fps"
        )
    thumbs = thumb_frames(span, rate, thumb_every) if thumb_every and thumb_dir else {}
    return _ChunkPlan(
        src=Path(src),
        span=span,
        rate=rate,
        frames=frames,
        keyframes=keyframe_frames(span, rate, segment_seconds),
        thumbs=thumbs,
        thumb_width=thumb_width + thumb_width % 2,
        thumb_dir=thumb_dir,
        preset=preset,
        segment_frames=max(1, math.ceil(Fraction(segment_seconds) * rate)),
        lead_frames=lead_frames(span, rate, video_end),
    )


def lead_frames(span: ChunkSpan, rate: Fraction, video_end: float | None) -> int:
    """How many frames before its start a chunk is decoded from: none, unless the chunk
    starts within HOLD_LEAD_SECONDS of the video stream's end or past it; then from that
    far before the end, so the last picture is there to be held."""
    first = chunk_frames(span, rate).start
    if video_end is None or first / rate < video_end - HOLD_LEAD_SECONDS:
        return 0
    return max(0, first - math.floor(Fraction(max(0.0, video_end - HOLD_LEAD_SECONDS)) * rate))


async def video_end(src: Path, limits: media.Limits) -> float | None:
    """Where the main video stream ends on the output's time line (which starts at the
    earliest stream), or None when the container does not say."""
    argv = [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        media.DEMUXER_WHITELIST,
        "-select_streams",
        "V:0",
        "-show_entries",
        "stream=start_time,duration:format=start_time",
        "-of",
        "json",
        media.file_url(src),
    ]
    try:
        data = json.loads(await media.run_tool(argv, limits) or "{}")
    except json.JSONDecodeError:
        return None
    streams = data.get("streams") or [{}]
    try:
        start = float(streams[0].get("start_time") or 0.0)
        origin = float((data.get("format") or {}).get("start_time") or 0.0)
        return start - origin + float(streams[0]["duration"])
    except (KeyError, TypeError, ValueError):
        return None


async def keyframe_times(src: Path, limits: media.Limits) -> list[float] | None:
    """The main video stream's keyframes, in seconds on the time line a chunk's input seek
    uses (from the container's start), in order; None when ffprobe cannot list them. One
    ffprobe reading packet flags only, decoding nothing."""
    try:
        listing = await media.run_tool(
            [
                "ffprobe",
                "-hide_banner",
                "-v",
                "error",
                "-protocol_whitelist",
                "file",
                "-format_whitelist",
                media.DEMUXER_WHITELIST,
                "-select_streams",
                "V:0",
                "-show_entries",
                "format=start_time:packet=pts_time,flags",
                "-of",
                "csv",
                media.file_url(src),
            ],
            limits,
        )
    except media.MediaError:
        return None
    return parse_keyframes(listing)


def parse_keyframes(listing: str) -> list[float]:
    """ffprobe's csv of the packets (``packet,pts_time,flags``) and the container's start
    (``format,start_time``) → sorted keyframe seconds from that start; packets without a
    time or a keyframe flag are skipped."""
    origin = 0.0
    keyframes: list[str] = []
    for line in listing.splitlines():
        section, _, fields = line.strip().partition(",")
        if section == "format":
            with contextlib.suppress(ValueError):  # N/A: the container names no start
                origin = float(fields.split(",", 1)[0])
        elif section == "packet":
            pts, _, flags = fields.partition(",")
            if flags.startswith("K"):
                keyframes.append(pts)
    times: set[float] = set()
    for pts in keyframes:
        try:
            seconds = float(pts) - origin
        except ValueError:
            continue  # N/A: a packet without a presentation time
        if math.isfinite(seconds) and seconds >= 0:
            times.add(round(seconds, 6))
    return sorted(times)


async def _encode_each_alone(
    plan: _ChunkPlan,
    specs: list[media.RenditionSpec],
    limits: media.Limits,
    progress: ProgressCallback,
) -> ChunkOutput:
    """The fallback after the shared ffmpeg failed: one ffmpeg per rendition, so a rendition
    that cannot be made (its output unwritable, an encoder refusing its size) costs only
    itself."""
    out = ChunkOutput()
    for done, spec in enumerate(specs):

        def part(percent: float, done: int = done) -> None:
            progress((done + percent / 100.0) / len(specs) * 100.0)

        try:
            await media.run_tool(
                chunk_args(plan, [spec], with_thumbs=False),
                limits,
                duration=plan.span.duration,
                on_progress=part,
            )
            out.files[rendition_name_of(spec)] = Path(spec.dst)
        except media.MediaError as exc:
            _remove(Path(spec.dst))
            out.failed[rendition_name_of(spec)] = str(exc)
    if not out.files:
        raise media.MediaError(
            f"chunk {plan.span.index}: no rendition could be encoded: "
            + "; ".join(f"{name}: {error}" for name, error in out.failed.items())
        )
    if plan.thumbs:
        out.thumbs, out.thumbs_error = await _thumbs_alone(plan, limits)
    return out


async def _thumbs_alone(plan: _ChunkPlan, limits: media.Limits) -> tuple[list[Path], str | None]:
    try:
        await media.run_tool(
            chunk_args(plan, [], with_thumbs=True), limits, on_progress=lambda _p: None
        )
        return _thumb_paths(plan), None
    except media.MediaError as exc:
        for thumb in _thumb_paths(plan):
            _remove(thumb)
        return [], str(exc)


# --- audio and join ------------------------------------------------------------------------


def audio_args(src: Path, dst_m4a: Path, *, audio_kbps: int, duration: float) -> list[str]:
    """The whole source's audio as one AAC stereo track starting at the video's time zero
    (silence fills a late start or a gap) and exactly ``duration`` long."""
    inp = ffmpeg.input(media.file_url(src), **media.INPUT_OPTIONS)
    audio = (
        inp["a:0"]
        .filter("aresample", **{"async": 1, "first_pts": 0})
        .filter("apad", whole_dur=_seconds(duration))
        .filter("atrim", end=_seconds(duration))
    )
    out = audio.output(
        media.file_url(dst_m4a),
        acodec="aac",
        ac=2,
        **{"b:a": f"{audio_kbps}k"},
        vn=None,
        map_metadata=-1,
        movflags="+faststart",
        format="mp4",
    )
    return media._compile(out)


async def encode_audio(
    src: Path,
    dst_m4a: Path,
    *,
    audio_kbps: int,
    limits: media.Limits,
    on_progress: ProgressCallback | None,
    duration: float | None = None,
) -> None:
    """Encode the source's audio once, for the whole clip (no gaps at chunk boundaries).
    ``duration`` (default: the probed duration) is the length of the result."""
    if duration is None:
        duration = (await media.probe(src, limits)).duration
    if not duration or duration <= 0:
        raise media.MediaError("the source has no duration to encode audio for")
    await media.run_tool(
        audio_args(src, dst_m4a, audio_kbps=audio_kbps, duration=duration),
        limits,
        duration=duration,
        on_progress=on_progress or (lambda _p: None),
    )


def concat_list(chunk_files: list[Path]) -> str:
    """An ffconcat list naming each chunk as a ``file:`` URL (no other protocol)."""
    lines = ["ffconcat version 1.0"]
    for path in chunk_files:
        url = media.file_url(path)
        if "'" in url or "\n" in url:
            raise ValueError(f"chunk path cannot be listed for concat: {path}")
        lines.append(f"file '{url}'")
    return "\n".join(lines) + "\n"


def join_args(listing: Path, audio: Path | None, dst_mp4: Path) -> list[str]:
    video = ffmpeg.input(media.file_url(listing), f="concat", safe=0, **OWN_CONCAT_INPUT)
    streams = [video["v:0"]]
    if audio is not None:
        streams.append(ffmpeg.input(media.file_url(audio), **OWN_MP4_INPUT)["a:0"])
    out = ffmpeg.output(
        *streams,
        media.file_url(dst_mp4),
        c="copy",
        movflags="+faststart",
        map_metadata=-1,
        format="mp4",
    )
    return media._compile(out)


async def join_chunks(
    chunk_files: list[Path], audio: Path | None, dst_mp4: Path, *, limits: media.Limits
) -> None:
    """One rendition's progressive MP4: its chunks in order, joined by stream copy, with the
    audio track muxed in, index first (faststart) so playback starts before the download
    ends."""
    if not chunk_files:
        raise ValueError("join_chunks needs at least one chunk")
    listing = Path(dst_mp4).with_name(Path(dst_mp4).name + ".ffconcat")
    listing.write_text(concat_list([Path(p) for p in chunk_files]))
    try:
        await media.run_tool(
            join_args(listing, audio, Path(dst_mp4)), limits, on_progress=lambda _p: None
        )
    finally:
        _remove(listing)


# --- HLS -----------------------------------------------------------------------------------


@dataclass
class HlsVariant:
    """One rendition's HLS media playlist, as the master playlist describes it."""

    name: str
    width: int
    height: int
    bandwidth: int  # peak bits/s over segments
    average_bandwidth: int
    codecs: str  # RFC 6381, e.g. "avc1.64001f"
    frame_rate: float
    playlist: str  # relative to the master playlist, e.g. "720p/index.m3u8"
    files: list[Path]
    # When its first picture is shown on the HLS timeline (x264's reordering delay): the
    # audio rendition is delayed to match (package_audio_hls's video_start).
    start_seconds: float = 0.0


@dataclass
class HlsAudio:
    bandwidth: int
    codecs: str
    playlist: str
    files: list[Path]


@dataclass
class Storyboard:
    sprites: list[Path]
    vtt: str
    tile_width: int
    tile_height: int
    every: float


HLS_PLAYLIST = "index.m3u8"
HLS_INIT = "init.mp4"
HLS_SEGMENT = "seg-%05d.m4s"
AUDIO_PLAYLIST_DIR = "audio"
AUDIO_GROUP = "audio"


def hls_args(
    src: Path, out_dir: Path, *, stream: str, segment_seconds: float, offset_seconds: float = 0.0
) -> list[str]:
    """fMP4 HLS of one stream of ``src`` by stream copy: a VOD playlist, init segment and
    numbered media segments in out_dir, the playlist naming them relatively.
    ``offset_seconds`` delays every timestamp (lines the audio up with the video)."""
    inp = ffmpeg.input(media.file_url(src), **OWN_MP4_INPUT)
    timing = {"output_ts_offset": _seconds(offset_seconds)} if offset_seconds > 0 else {}
    out = inp[stream].output(
        media.file_url(out_dir / HLS_PLAYLIST),
        c="copy",
        format="hls",
        **timing,
        hls_time=_seconds(segment_seconds),
        hls_playlist_type="vod",
        hls_segment_type="fmp4",
        hls_fmp4_init_filename=HLS_INIT,
        hls_segment_filename=media.file_url(out_dir / HLS_SEGMENT),
        start_number=1,
        hls_flags="independent_segments",
        map_metadata=-1,
    )
    return media._compile(out)


@dataclass(frozen=True)
class _Segment:
    path: Path
    seconds: float


def playlist_segments(playlist: Path) -> list[_Segment]:
    """The media segments a VOD playlist lists, with their EXTINF durations."""
    segments: list[_Segment] = []
    seconds: float | None = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            seconds = float(line.removeprefix("#EXTINF:").split(",", 1)[0])
        elif line and not line.startswith("#") and seconds is not None:
            segments.append(_Segment(playlist.parent / line, seconds))
            seconds = None
    if not segments:
        raise media.MediaError(f"the HLS muxer wrote no segments to {playlist.name}")
    return segments


def bandwidths(segments: list[_Segment]) -> tuple[int, int]:
    """(peak, average) bits per second over the segments, as a player downloads them. The
    peak leaves out a last segment under half the longest: a few audio frames there carry a
    whole fragment header, a rate no player ever has to sustain."""
    sizes = [(s.path.stat().st_size * 8, s.seconds) for s in segments]
    longest = max(seconds for _bits, seconds in sizes)
    steady = sizes[:-1] if len(sizes) > 1 and sizes[-1][1] < longest / 2 else sizes
    peak = max(bits / seconds for bits, seconds in steady if seconds > 0)
    total_seconds = sum(seconds for _bits, seconds in sizes)
    average = sum(bits for bits, _seconds in sizes) / total_seconds
    return math.ceil(peak), math.ceil(average)


def avc_codec_string(init_segment: Path) -> str:
    """RFC 6381 ``avc1.PPCCLL`` from the stream's own avcC box (profile, constraint flags,
    level), exactly what the encoder wrote."""
    data = init_segment.read_bytes()
    at = data.find(b"avcC")
    if at < 0 or len(data) < at + 8:
        raise media.MediaError(f"{init_segment.name} has no H.264 configuration (avcC)")
    profile, constraints, level = data[at + 5], data[at + 6], data[at + 7]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}


async def stream_lead(path: Path, selector: str, limits: media.Limits) -> float:
    """How far before 0 a stream's first packet is timed in an MP4 (seconds, >= 0): x264's
    B-frame reordering delay (first DTS) for video, the encoder's priming (first PTS) for
    AAC. An MP4 hides it with an edit list; fMP4 HLS segments cannot, so a stream-copied
    rendition starts that much late, and its audio must be delayed alike."""
    argv = [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        OWN_MP4_INPUT["format_whitelist"],
        "-select_streams",
        selector,
        "-show_entries",
        "packet=pts_time,dts_time",
        "-read_intervals",
        "%+#1",
        "-of",
        "json",
        media.file_url(path),
    ]
    packets = json.loads(await media.run_tool(argv, limits) or "{}").get("packets") or []
    if not packets:
        raise media.MediaError(f"{path.name} has no {selector} packets")
    times = [
        float(packets[0][k])
        for k in ("pts_time", "dts_time")
        if packets[0].get(k) not in (None, "N/A")
    ]
    return max(0.0, -min(times, default=0.0))


async def _stream_info(
    path: Path,
    selector: str,
    limits: media.Limits,
    *,
    formats: str = OWN_MP4_INPUT["format_whitelist"],
) -> dict:
    argv = [
        "ffprobe",
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        formats,
        "-select_streams",
        selector,
        "-show_entries",
        "stream=codec_name,profile,width,height,avg_frame_rate,r_frame_rate",
        "-of",
        "json",
        media.file_url(path),
    ]
    out = await media.run_tool(argv, limits)
    streams = json.loads(out or "{}").get("streams") or []
    if not streams:
        raise media.MediaError(f"{path.name} has no {selector} stream")
    return streams[0]


def _rate(text: str | None) -> float:
    num, _, den = (text or "0/1").partition("/")
    try:
        return float(Fraction(int(num), int(den or 1)))
    except (ValueError, ZeroDivisionError):
        return 0.0


async def _package(
    src: Path,
    out_dir: Path,
    *,
    stream: str,
    segment_seconds: float,
    limits: media.Limits,
    offset_seconds: float = 0.0,
) -> list[_Segment]:
    _make_dir(out_dir)
    await media.run_tool(
        hls_args(
            src,
            out_dir,
            stream=stream,
            segment_seconds=segment_seconds,
            offset_seconds=offset_seconds,
        ),
        limits,
        on_progress=lambda _p: None,
    )
    return playlist_segments(out_dir / HLS_PLAYLIST)


def _files(out_dir: Path, segments: list[_Segment]) -> list[Path]:
    return [out_dir / HLS_PLAYLIST, out_dir / HLS_INIT, *(s.path for s in segments)]


async def package_hls(
    mp4: Path, out_dir: Path, *, name: str, segment_seconds: float, limits: media.Limits
) -> HlsVariant:
    """One rendition's video as fMP4 HLS in out_dir (index.m3u8, init.mp4, seg-00001.m4s…),
    by stream copy: segments start at the forced keyframes, so every rendition's segments
    start at the same times. The playlist's URIs are relative."""
    segments = await _package(
        Path(mp4), Path(out_dir), stream="v:0", segment_seconds=segment_seconds, limits=limits
    )
    info = await _stream_info(Path(mp4), "v:0", limits)
    start = await stream_lead(Path(mp4), "v:0", limits)
    peak, average = bandwidths(segments)
    return HlsVariant(
        start_seconds=round(start, 6),
        name=name,
        width=int(info.get("width") or 0),
        height=int(info.get("height") or 0),
        bandwidth=peak,
        average_bandwidth=average,
        codecs=avc_codec_string(Path(out_dir) / HLS_INIT),
        frame_rate=_rate(info.get("avg_frame_rate") or info.get("r_frame_rate")),
        playlist=f"{name}/{HLS_PLAYLIST}",
        files=_files(Path(out_dir), segments),
    )


async def package_audio_hls(
    audio_m4a: Path,
    out_dir: Path,
    *,
    segment_seconds: float,
    limits: media.Limits,
    video_start: float = 0.0,
) -> HlsAudio:
    """The audio track as its own fMP4 HLS rendition (the master's audio group), its
    timestamps delayed by ``video_start`` (HlsVariant.start_seconds) so that the sound of
    source time 0 plays with the first picture. Without it, HLS viewers hear the sound a
    few frames early (the joined MP4 is in sync either way: its edit lists say so)."""
    segments = await _package(
        Path(audio_m4a),
        Path(out_dir),
        stream="a:0",
        segment_seconds=segment_seconds,
        limits=limits,
        offset_seconds=video_start,
    )
    info = await _stream_info(Path(audio_m4a), "a:0", limits)
    if info.get("codec_name") != "aac":
        raise media.MediaError(f"the audio track is {info.get('codec_name')}, not AAC")
    object_type = AAC_OBJECT_TYPES.get(str(info.get("profile")), 2)
    peak, _average = bandwidths(segments)
    return HlsAudio(
        bandwidth=peak,
        codecs=f"mp4a.40.{object_type}",
        playlist=f"{AUDIO_PLAYLIST_DIR}/{HLS_PLAYLIST}",
        files=_files(Path(out_dir), segments),
    )


def master_playlist(variants: list[HlsVariant], audio: HlsAudio | None) -> str:
    """The master playlist: an audio group (when there is audio) and one variant per
    rendition, highest first, with the attributes players choose by (BANDWIDTH counts the
    audio a variant plays with)."""
    if not variants:
        raise ValueError("a master playlist needs at least one variant")
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="Audio",'
            f'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="{audio.playlist}"'
        )
    for variant in sorted(variants, key=lambda v: (v.height, v.bandwidth), reverse=True):
        lines += [_stream_inf(variant, audio), variant.playlist]
    return "\n".join(lines) + "\n"


def _stream_inf(variant: HlsVariant, audio: HlsAudio | None) -> str:
    extra = audio.bandwidth if audio else 0
    codecs = f"{variant.codecs},{audio.codecs}" if audio else variant.codecs
    attributes = [
        f"BANDWIDTH={variant.bandwidth + extra}",
        f"AVERAGE-BANDWIDTH={variant.average_bandwidth + extra}",
        f"RESOLUTION={variant.width}x{variant.height}",
        f'CODECS="{codecs}"',
        f"FRAME-RATE={variant.frame_rate:.3f}",
    ]
    if audio is not None:
        attributes.append(f'AUDIO="{AUDIO_GROUP}"')
    return "#EXT-X-STREAM-INF:" + ",".join(attributes)


# --- storyboard ----------------------------------------------------------------------------

SPRITE_NAME = "%d.jpg"


def storyboard_args(listing: Path, out_dir: Path, *, columns: int, rows: int) -> list[str]:
    """The thumbnails, in order, tiled columns × rows per sprite sheet: 0.jpg, 1.jpg, …"""
    inp = ffmpeg.input(media.file_url(listing), f="concat", safe=0, **OWN_CONCAT_INPUT)
    # Concatenated JPEGs all have pts 0: number them, or the sheets collide at the encoder.
    out = (
        inp["v:0"]
        .filter("setpts", "N/TB")
        .filter("tile", f"{columns}x{rows}")
        .output(
            media.file_url(out_dir / SPRITE_NAME),
            vcodec="mjpeg",
            format="image2",
            start_number=0,
            **{"q:v": THUMB_QUALITY, "fps_mode": "passthrough"},
        )
    )
    return media._compile(out)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def storyboard_vtt(
    count: int,
    *,
    every: float,
    columns: int,
    rows: int,
    tile_width: int,
    tile_height: int,
    sprite_url: Callable[[int], str],
    duration: float,
) -> str:
    """A WebVTT thumbnails track: cue i covers [i*every, (i+1)*every) and shows tile i
    (sheet i // (columns*rows), row-major inside it); the last cue ends at ``duration``."""
    per_sheet = columns * rows
    cues = ["WEBVTT", ""]
    shown = [i for i in range(count) if i * every < duration] or [0]
    for i in shown:
        sheet, place = divmod(i, per_sheet)
        x, y = place % columns * tile_width, place // columns * tile_height
        end = duration if i == shown[-1] else (i + 1) * every
        cues += [
            f"{_timestamp(i * every)} --> {_timestamp(end)}",
            f"{sprite_url(sheet)}#xywh={x},{y},{tile_width},{tile_height}",
            "",
        ]
    return "\n".join(cues)


async def make_storyboard(
    thumbs: list[Path],
    out_dir: Path,
    *,
    every: float,
    columns: int,
    rows: int,
    sprite_url: Callable[[int], str],
    limits: media.Limits,
    duration: float | None = None,
) -> Storyboard:
    """Sprite sheets of the thumbnails (taken every ``every`` seconds, in time order) and the
    WebVTT track that points a player's scrub-bar preview at each tile. ``duration`` (the
    clip's) ends the last cue; by default it is len(thumbs) × every."""
    if not thumbs:
        raise ValueError("a storyboard needs at least one thumbnail")
    if every <= 0 or columns < 1 or rows < 1:
        raise ValueError(f"bad storyboard grid: every={every!r}, {columns}x{rows}")
    out_dir = _make_dir(Path(out_dir))
    first = await _stream_info(Path(thumbs[0]), "v:0", limits, formats=THUMB_FORMATS)
    tile_width, tile_height = int(first.get("width") or 0), int(first.get("height") or 0)
    listing = out_dir / "thumbs.ffconcat"
    listing.write_text(concat_list([Path(t) for t in thumbs]))
    try:
        await media.run_tool(
            storyboard_args(listing, out_dir, columns=columns, rows=rows),
            limits,
            on_progress=lambda _p: None,
        )
    finally:
        _remove(listing)
    sheets = math.ceil(len(thumbs) / (columns * rows))
    sprites = [out_dir / (SPRITE_NAME % n) for n in range(sheets)]
    vtt = storyboard_vtt(
        len(thumbs),
        every=every,
        columns=columns,
        rows=rows,
        tile_width=tile_width,
        tile_height=tile_height,
        sprite_url=sprite_url,
        duration=len(thumbs) * every if duration is None else duration,
    )
    return Storyboard(
        sprites=sprites, vtt=vtt, tile_width=tile_width, tile_height=tile_height, every=every
    )
