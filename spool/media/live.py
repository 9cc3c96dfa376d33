"""The live playlists of a video that plays before it is ready (docs/pipelines.md, "Playable
within seconds"): each chunk of one rendition cut into fMP4 segments where it was encoded,
timed where it sits in the whole video, and EVENT playlists that grow, in order, as chunks
are done, ended (EXT-X-ENDLIST) once every chunk is in.

A chunk's keyframes are the segment grid's and its own first frame (spool/media/chunks.py),
so cutting at every keyframe gives the grid's segments, one cut short where a chunk starts
between two grid points. Chunks are separate encodes with the same settings, so their
decoder configuration (avcC) is the same and the first chunk's init segment serves them
all; a chunk whose configuration differs starts its own (EXT-X-DISCONTINUITY, EXT-X-MAP).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from spool.media import hls, rates, tools
from spool.models.live import LiveAudio, LiveChunk, LivePublishInput, LiveSegment
from spool.models.video import HlsAudioInfo, HlsVariantInfo

# Shorter than any frame: the muxer then cuts at every keyframe.
EVERY_KEYFRAME = 0.001
PLAYLIST = hls.HLS_PLAYLIST


def chunk_prefix(index: int) -> str:
    return f"c{index:05d}-"


async def cut_chunk(
    mp4: Path, out_dir: Path, *, index: int, start: float, limits: tools.Limits
) -> LiveChunk:
    """A chunk's video-only MP4 as fMP4 segments in out_dir, timed from ``start`` (its place
    in the video) plus the encoder's reordering delay, as the whole rendition's HLS variant
    is (hls.package_hls): every chunk's pictures then follow the one before's exactly."""
    lead = await hls.stream_lead(mp4, "v:0", limits)
    prefix = chunk_prefix(index)
    cut = await hls.cut_stream(
        mp4,
        out_dir,
        stream="v:0",
        segment_seconds=EVERY_KEYFRAME,
        limits=limits,
        offset_seconds=start + lead,
        prefix=prefix,
        absolute=True,
    )
    info = await tools.stream_info(mp4, "v:0", limits)
    init = f"{prefix}{hls.HLS_INIT}"
    return LiveChunk(
        init=init,
        segments=[
            LiveSegment(s.path.name, round(s.seconds, 6), s.path.stat().st_size)
            for s in cut.segments
        ],
        width=int(info.get("width") or 0),
        height=int(info.get("height") or 0),
        codecs=hls.avc_codec_string(out_dir / init),
        lead_seconds=round(lead, 6),
        config=config_digest(out_dir / init),
    )


def config_digest(init: Path) -> str:
    """A digest of the init segment's avcC box (the decoder configuration); "" without one."""
    data = init.read_bytes()
    at = data.find(b"avcC")
    if at < 4:
        return ""
    size = int.from_bytes(data[at - 4 : at], "big")
    return hashlib.sha256(data[at - 4 : at - 4 + size]).hexdigest()[:16]


def cut_files(out_dir: Path) -> list[Path]:
    """What a cut leaves to store: init and media segments (its local playlist is not: the
    live playlists are written by ``media_playlist``)."""
    return sorted(p for p in out_dir.iterdir() if p.suffix in (".mp4", ".m4s"))


async def cut_audio(
    m4a: Path,
    out_dir: Path,
    *,
    segment_seconds: float,
    lead: float,
    limits: tools.Limits,
    untrusted: bool = False,
    until: float | None = None,
) -> tuple[LiveAudio, list[Entry]]:
    """An AAC track as the live audio rendition in out_dir, delayed by the pictures' lead;
    the muxer's own playlist there (``AUDIO_CUT``) lists every segment, returned with it.
    ``untrusted``: the track is the upload's own AAC, copied from the upload (read with its
    whitelists). ``until``: only the track's first seconds (None: all of it; the cut says
    which it got)."""
    info: HlsAudioInfo = await hls.package_audio_hls(
        m4a,
        out_dir,
        segment_seconds=segment_seconds,
        limits=limits,
        video_start=lead,
        untrusted=untrusted,
        until=until,
    )
    (out_dir / PLAYLIST).rename(out_dir / AUDIO_CUT)
    entries = read_playlist((out_dir / AUDIO_CUT).read_text())
    cut = sum(segment.seconds for _init, segment in entries)
    # A cut shorter than asked reached the track's end: it is the whole track.
    whole = until is None or cut + lead < until - AUDIO_CUT_SLACK
    audio = LiveAudio(
        codecs=info.codecs,
        bandwidth=info.bandwidth,
        cut_until=None if whole else until,
        channels=info.channels,
    )
    return audio, entries


def audio_cut_until(seconds: float, segment_seconds: float, before: float | None) -> float:
    """How much of the track a publish whose pictures reach ``seconds`` cuts when what is
    cut does not reach them: a little past the pictures, and at least twice the cut before
    (a track cut again and again from its start is read about twice over in all, and the
    first publish reads seconds of a long upload, not all of it)."""
    return max(seconds + 2 * segment_seconds, 2 * before if before else 0.0)


def audio_covers(cut: list[Entry], audio: LiveAudio, seconds: float, complete: bool) -> bool:
    """Whether a stored cut lists the audio as far as ``seconds`` (all of it: ``complete``)
    in whole segments: a part cut's last segment may end where the reading stopped."""
    if audio.cut_until is None:
        return True
    if complete:
        return False
    return sum(segment.seconds for _init, segment in cut[:-1]) >= seconds


# A cut this much shorter than asked ended with the track (the muxer's timing is exact to an
# AAC frame, about 21 ms).
AUDIO_CUT_SLACK = 0.5


# The audio's whole cut, stored beside its live playlist: each publish lists it as far as
# the pictures reach.
AUDIO_CUT = "cut.m3u8"

Entry = tuple[str | None, LiveSegment]  # (the init segment it starts, if any; the segment)


def chunk_entries(chunks: list[LiveChunk], previous_config: str = "") -> list[Entry]:
    """The chunks' segments; a chunk names its own init segment only when its decoder
    configuration differs from the chunk's before (the first chunk always)."""
    entries: list[Entry] = []
    for chunk in chunks:
        starts_map = not previous_config or chunk.config != previous_config
        for n, segment in enumerate(chunk.segments):
            entries.append((chunk.init if n == 0 and starts_map else None, segment))
        previous_config = chunk.config or chunk.init  # without a digest: never shared
    return entries


def read_playlist(text: str) -> list[Entry]:
    """The segments a media playlist lists, each with the EXT-X-MAP it starts under."""
    entries: list[Entry] = []
    init: str | None = None
    for item in hls.playlist_lines(text):
        if isinstance(item, hls.Listed):
            entries.append((init, LiveSegment(item.uri, item.seconds)))
            init = None
        elif item.name == "EXT-X-MAP" and item.value.startswith("URI="):
            init = item.value.removeprefix("URI=").strip('"')
    return entries


def appended(
    published: list[Entry], chunks: list[LiveChunk], previous_config: str = ""
) -> list[Entry]:
    """``published`` with the chunks it does not hold yet (a retried publish finds its
    chunks already in, by their first segment)."""
    have = {segment.uri for _init, segment in published}
    new = [c for c in chunks if c.segments and c.segments[0].uri not in have]
    if len(new) < len(chunks) and new:
        previous_config = chunks[chunks.index(new[0]) - 1].config
    return published + chunk_entries(new, previous_config)


def reach(entries: list[Entry]) -> float:
    """How many seconds of the video the entries cover."""
    return sum(segment.seconds for _init, segment in entries)


def target_seconds(segment_seconds: float) -> int:
    """EXT-X-TARGETDURATION, the same at every publish (an EVENT playlist may not change
    it): no segment is longer than the grid's, rounded."""
    return max(1, round(segment_seconds))


def media_playlist(entries: list[Entry], *, target: int, complete: bool) -> str:
    """An EVENT media playlist over ``entries`` in order, ended once ``complete``."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for n, (init, segment) in enumerate(entries):
        if init is not None:
            lines += ["#EXT-X-DISCONTINUITY"] if n else []
            lines.append(f'#EXT-X-MAP:URI="{init}"')
        lines += [f"#EXTINF:{segment.seconds:.6f},", segment.uri]
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def audio_entries(cut: list[Entry], seconds: float, complete: bool) -> list[Entry]:
    """The audio's segments as far as the pictures reach (all of them once complete)."""
    shown: list[Entry] = []
    at = 0.0
    for entry in cut:
        if not complete and at >= seconds:
            break
        shown.append(entry)
        at += entry[1].seconds
    return shown


def master_playlist(inp: LivePublishInput, audio: LiveAudio | None) -> str:
    """The live master over the one rendition. Its BANDWIDTH must hold for segments not yet
    made: the most a segment may carry under the rendition's ceiling (its peaks are held
    to 1.5 times it), or the peak measured in these chunks if higher. No AVERAGE-BANDWIDTH:
    the average of segments not yet made is not known (the full ladder's master has it)."""
    first = inp.chunks[0]
    sizes = [(s.bytes * 8, s.seconds) for c in inp.chunks for s in c.segments]
    measured = hls.peak_segment_bit_rate(sizes, target_seconds(inp.segment_seconds))
    bound = inp.ceiling_kbps * 1000 * rates.FIXED_PEAK_FACTOR
    variant = HlsVariantInfo(
        name=inp.rendition,
        width=first.width,
        height=first.height,
        bandwidth=math.ceil(max(measured, bound)),
        average_bandwidth=0,
        codecs=first.codecs,
        frame_rate=inp.frame_rate,
        playlist=f"{inp.rendition}/{PLAYLIST}",
    )
    shown_audio = None
    if audio is not None:
        shown_audio = HlsAudioInfo(
            bandwidth=audio.bandwidth,
            codecs=audio.codecs,
            playlist=f"{hls.AUDIO_PLAYLIST_DIR}/{PLAYLIST}",
            channels=audio.channels,
        )
    return hls.master_playlist([variant], shown_audio)
