"""HLS by stream copy: one fMP4 media playlist per rendition (a variant), one for the audio
track, and the master playlist over them (RFC 8216)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from spool.media import tools
from spool.models.video import HlsAudioInfo, HlsVariantInfo

HLS_PLAYLIST = "index.m3u8"
HLS_INIT = "init.mp4"
HLS_SEGMENT = "seg-%05d.m4s"
AUDIO_PLAYLIST_DIR = "audio"
AUDIO_GROUP = "audio"
AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}


def hls_args(
    src: Path,
    out_dir: Path,
    *,
    stream: str,
    segment_seconds: float,
    offset_seconds: float = 0.0,
    prefix: str = "",
    absolute: bool = False,
    untrusted: bool = False,
    until: float | None = None,
) -> list[str]:
    """fMP4 HLS of one stream of ``src`` by stream copy: a VOD playlist, init segment and
    numbered media segments in out_dir, the playlist naming them relatively, each file name
    starting with ``prefix``. ``offset_seconds`` delays every timestamp (lines the audio up
    with the video, or a chunk with its place in the video); ``until``: only the source's
    first seconds are read (the last segment may end early)."""
    limit = {"t": tools.seconds_arg(until)} if until is not None else {}
    read_as = tools.INPUT_OPTIONS if untrusted else tools.OWN_MP4_INPUT
    inp = ffmpeg.input(tools.file_url(src), **read_as, **limit)
    timing = {"output_ts_offset": tools.seconds_arg(offset_seconds)} if offset_seconds > 0 else {}
    if absolute:
        timing["hls_segment_options"] = "movflags=+frag_discont"
    if untrusted and stream.startswith("a"):
        # An upload's AAC may be ADTS (MPEG-TS, raw .aac): fMP4 carries it as in MP4. The
        # filter passes AAC that is already so untouched.
        timing["bsf:a"] = "aac_adtstoasc"
    out = inp[stream].output(
        tools.file_url(out_dir / f"{prefix}{HLS_PLAYLIST}"),
        c="copy",
        format="hls",
        **timing,
        hls_time=tools.seconds_arg(segment_seconds),
        hls_playlist_type="vod",
        hls_segment_type="fmp4",
        hls_fmp4_init_filename=f"{prefix}{HLS_INIT}",
        hls_segment_filename=tools.file_url(out_dir / f"{prefix}{HLS_SEGMENT}"),
        start_number=1,
        hls_flags="independent_segments",
        map_metadata=-1,
    )
    return tools.ffmpeg_argv(out)


async def package_hls(
    mp4: Path, out_dir: Path, *, name: str, segment_seconds: float, limits: tools.Limits
) -> HlsVariantInfo:
    """One rendition's video as fMP4 HLS in out_dir (index.m3u8, init.mp4, seg-00001.m4s…),
    by stream copy: segments start at the forced keyframes, so every rendition's segments
    start at the same times. The playlist's URIs are relative."""
    playlist = await cut_stream(
        Path(mp4), Path(out_dir), stream="v:0", segment_seconds=segment_seconds, limits=limits
    )
    info = await tools.stream_info(Path(mp4), "v:0", limits)
    start = await stream_lead(Path(mp4), "v:0", limits)
    peak, average = bandwidths(playlist)
    return HlsVariantInfo(
        start_seconds=round(start, 6),
        name=name,
        width=int(info.get("width") or 0),
        height=int(info.get("height") or 0),
        bandwidth=peak,
        average_bandwidth=average,
        codecs=avc_codec_string(Path(out_dir) / HLS_INIT),
        frame_rate=_rate(info.get("avg_frame_rate") or info.get("r_frame_rate")),
        playlist=f"{name}/{HLS_PLAYLIST}",
    )


async def package_audio_hls(
    audio_m4a: Path,
    out_dir: Path,
    *,
    segment_seconds: float,
    limits: tools.Limits,
    video_start: float = 0.0,
    untrusted: bool = False,
    until: float | None = None,
) -> HlsAudioInfo:
    """The audio track as its own fMP4 HLS rendition (the master's audio group), its
    timestamps delayed by ``video_start`` (HlsVariantInfo.start_seconds) so that the sound
    of source time 0 plays with the first picture. Without it, HLS viewers hear the sound a
    few frames early (the joined MP4 is in sync either way: its edit lists say so)."""
    playlist = await cut_stream(
        Path(audio_m4a),
        Path(out_dir),
        stream="a:0",
        segment_seconds=segment_seconds,
        limits=limits,
        offset_seconds=video_start,
        untrusted=untrusted,
        until=until,
    )
    formats = tools.DEMUXER_WHITELIST if untrusted else tools.OWN_MP4_FORMATS
    info = await tools.stream_info(Path(audio_m4a), "a:0", limits, formats=formats)
    if info.get("codec_name") != "aac":
        raise tools.MediaError(f"the audio track is {info.get('codec_name')}, not AAC")
    object_type = AAC_OBJECT_TYPES.get(str(info.get("profile")), 2)
    peak, average = bandwidths(playlist)
    return HlsAudioInfo(
        bandwidth=peak,
        average_bandwidth=average,
        codecs=f"mp4a.40.{object_type}",
        playlist=f"{AUDIO_PLAYLIST_DIR}/{HLS_PLAYLIST}",
        channels=int(info.get("channels") or 2),
    )


def master_playlist(variants: list[HlsVariantInfo], audio: HlsAudioInfo | None) -> str:
    """The master playlist: an audio group (when there is audio) and one variant per
    rendition, highest first, with the attributes players choose by (BANDWIDTH counts the
    audio a variant plays with)."""
    if not variants:
        raise ValueError("a master playlist needs at least one variant")
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="Audio",'
            f'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{audio.channels}",URI="{audio.playlist}"'
        )
    for variant in sorted(variants, key=lambda v: (v.height, v.bandwidth), reverse=True):
        lines += [_stream_inf(variant, audio), variant.playlist]
    return "\n".join(lines) + "\n"


def _stream_inf(variant: HlsVariantInfo, audio: HlsAudioInfo | None) -> str:
    """A variant's attributes. BANDWIDTH is the sum of the variant's and its audio's peak
    segment bit rates, AVERAGE-BANDWIDTH the sum of their averages (RFC 8216, 4.3.4.2)."""
    peak_audio = audio.bandwidth if audio else 0
    average_audio = (audio.average_bandwidth or audio.bandwidth) if audio else 0
    codecs = f"{variant.codecs},{audio.codecs}" if audio else variant.codecs
    attributes = [
        f"BANDWIDTH={max(variant.bandwidth, variant.average_bandwidth) + peak_audio}",
        # Optional (RFC 8216, 4.3.4.2), and unknown while a live playlist still grows: 0.
        *(
            [f"AVERAGE-BANDWIDTH={variant.average_bandwidth + average_audio}"]
            if variant.average_bandwidth > 0
            else []
        ),
        f"RESOLUTION={variant.width}x{variant.height}",
        f'CODECS="{codecs}"',
        f"FRAME-RATE={variant.frame_rate:.3f}",
    ]
    if audio is not None:
        attributes.append(f'AUDIO="{AUDIO_GROUP}"')
    return "#EXT-X-STREAM-INF:" + ",".join(attributes)


# --- what the packager wrote ---------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    path: Path
    seconds: float


@dataclass(frozen=True)
class MediaPlaylist:
    segments: list[Segment]
    target_seconds: int  # EXT-X-TARGETDURATION


async def cut_stream(
    src: Path,
    out_dir: Path,
    *,
    stream: str,
    segment_seconds: float,
    limits: tools.Limits,
    offset_seconds: float = 0.0,
    prefix: str = "",
    absolute: bool = False,
    untrusted: bool = False,
    until: float | None = None,
) -> MediaPlaylist:
    """One stream of ``src`` cut into fMP4 segments in out_dir, and what the muxer wrote."""
    tools.make_dir(out_dir)
    await tools.run_ffmpeg(
        hls_args(
            src,
            out_dir,
            stream=stream,
            segment_seconds=segment_seconds,
            offset_seconds=offset_seconds,
            prefix=prefix,
            absolute=absolute,
            untrusted=untrusted,
            until=until,
        ),
        limits,
    )
    return read_media_playlist(out_dir / f"{prefix}{HLS_PLAYLIST}")


@dataclass(frozen=True)
class Tag:
    """A tag line of a playlist other than EXTINF: ``#EXT-X-MAP:URI="init.mp4"`` is
    ``Tag("EXT-X-MAP", 'URI="init.mp4"')``."""

    name: str
    value: str


@dataclass(frozen=True)
class Listed:
    """A media segment a playlist lists: its URI as written, its EXTINF duration."""

    uri: str
    seconds: float


def playlist_lines(text: str) -> Iterator[Tag | Listed]:
    """A media playlist's tags and segments, in order: a segment is a URI line with the
    duration of the EXTINF before it (a URI line without one is passed over)."""
    seconds: float | None = None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            seconds = float(line.removeprefix("#EXTINF:").split(",", 1)[0])
        elif line.startswith("#"):
            name, _, value = line.removeprefix("#").partition(":")
            yield Tag(name, value)
        elif line and seconds is not None:
            yield Listed(line, seconds)
            seconds = None


def read_media_playlist(playlist: Path) -> MediaPlaylist:
    """The media segments a VOD playlist lists, with their EXTINF durations, and its target
    duration."""
    segments: list[Segment] = []
    target = 0
    for item in playlist_lines(playlist.read_text()):
        if isinstance(item, Listed):
            segments.append(Segment(playlist.parent / item.uri, item.seconds))
        elif item.name == "EXT-X-TARGETDURATION":
            target = int(item.value)
    if not segments:
        raise tools.MediaError(f"the HLS muxer wrote no segments to {playlist.name}")
    if target <= 0:
        raise tools.MediaError(f"{playlist.name} has no EXT-X-TARGETDURATION")
    return MediaPlaylist(segments, target)


def bandwidths(playlist: MediaPlaylist) -> tuple[int, int]:
    """(peak, average) segment bit rates in bits per second, as RFC 8216 (section 4.3.4.2)
    defines them for BANDWIDTH and AVERAGE-BANDWIDTH."""
    sizes = [(s.path.stat().st_size * 8, s.seconds) for s in playlist.segments]
    peak = peak_segment_bit_rate(sizes, playlist.target_seconds)
    total_seconds = sum(seconds for _bits, seconds in sizes)
    average = sum(bits for bits, _seconds in sizes) / total_seconds if total_seconds > 0 else 0
    # The contiguous sets the peak is taken over cover every segment, so it is never below
    # the average; max() keeps that true for a playlist of one segment shorter than half
    # its target duration, which no set of the right length can contain.
    return math.ceil(max(peak, average)), math.ceil(average)


def peak_segment_bit_rate(sizes: list[tuple[int, float]], target_seconds: float) -> float:
    """RFC 8216's peak segment bit rate: the largest bit rate of any contiguous set of
    segments whose total duration is between 0.5 and 1.5 times the target duration. A last
    segment a few frames long is then measured together with the one before it, never alone
    (alone, its fragment header would count as a rate no player has to sustain)."""
    low, high = 0.5 * target_seconds, 1.5 * target_seconds
    peak = 0.0
    for first in range(len(sizes)):
        bits = seconds = 0.0
        for size, length in sizes[first:]:
            bits, seconds = bits + size, seconds + length
            if seconds > high:
                break
            if seconds >= low:
                peak = max(peak, bits / seconds)
    return peak


def avc_codec_string(init_segment: Path) -> str:
    """RFC 6381 ``avc1.PPCCLL`` from the stream's own avcC box (profile, constraint flags,
    level), exactly what the encoder wrote."""
    data = init_segment.read_bytes()
    at = data.find(b"avcC")
    if at < 0 or len(data) < at + 8:
        raise tools.MediaError(f"{init_segment.name} has no H.264 configuration (avcC)")
    profile, constraints, level = data[at + 5], data[at + 6], data[at + 7]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


async def stream_lead(path: Path, selector: str, limits: tools.Limits) -> float:
    """How far before 0 a stream's first packet is timed in an MP4 (seconds, >= 0): x264's
    B-frame reordering delay (first DTS) for video, the encoder's priming (first PTS) for
    AAC. An MP4 hides it with an edit list; fMP4 HLS segments cannot, so a stream-copied
    rendition starts that much late, and its audio must be delayed alike."""
    argv = tools.ffprobe_argv(
        path,
        [
            "-select_streams",
            selector,
            "-show_entries",
            "packet=pts_time,dts_time",
            "-read_intervals",
            "%+#1",
            "-of",
            "json",
        ],
        formats=tools.OWN_MP4_FORMATS,
    )
    packets = json.loads(await tools.run_tool(argv, limits) or "{}").get("packets") or []
    if not packets:
        raise tools.MediaError(f"{path.name} has no {selector} packets")
    times = [
        float(packets[0][k])
        for k in ("pts_time", "dts_time")
        if packets[0].get(k) not in (None, "N/A")
    ]
    return max(0.0, -min(times, default=0.0))


def _rate(text: str | None) -> float:
    num, _, den = (text or "0/1").partition("/")
    try:
        return float(Fraction(int(num), int(den or 1)))
    except (ValueError, ZeroDivisionError):
        return 0.0
