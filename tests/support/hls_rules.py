"""RFC 8216's rules for the playlists Spool writes, checked on what a player downloads.

The playlists are parsed by a maintained library (``m3u8``), not by Spool's own code, and the
rules are stated here from the RFC, so a test using this fails when Spool's packager and the
RFC disagree. ``read`` answers a URI relative to the master playlist: the playlist's text or
a segment's bytes, from a directory or from object storage alike.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

import m3u8

Read = Callable[[str], bytes]


@dataclass(frozen=True)
class MediaFacts:
    """One media playlist as measured: its segments' bit rates, RFC 8216 section 4.3.4.2."""

    uri: str
    peak: float  # the peak segment bit rate
    average: float  # the average segment bit rate


def violations(master_uri: str, read: Read) -> list[str]:
    """Every rule of RFC 8216 the master playlist at ``master_uri`` and its media playlists
    break, as sentences; empty when they conform."""
    master = m3u8.loads(read(master_uri).decode("utf-8"))
    base = posixpath.dirname(master_uri)
    found: list[str] = []
    if not master.is_variant:
        return [f"{master_uri} is not a master playlist"]
    audio = {
        media.group_id: _media_facts(posixpath.join(base, media.uri), read, found)
        for media in master.media
        if media.type == "AUDIO" and media.uri
    }
    for playlist in master.playlists:
        found += _variant_violations(playlist, base, audio, read)
    return found


def _variant_violations(
    playlist: m3u8.Playlist, base: str, audio: dict[str, MediaFacts], read: Read
) -> list[str]:
    info = playlist.stream_info
    found: list[str] = []
    name = playlist.uri
    video = _media_facts(posixpath.join(base, playlist.uri), read, found)
    group = info.audio
    if group is not None and group not in audio:
        found.append(f"{name}: AUDIO={group!r} names no EXT-X-MEDIA audio rendition")
    heard = audio.get(group) if group else None
    # 4.3.4.2: BANDWIDTH is the peak of the variant's segments plus its renditions' peaks,
    # AVERAGE-BANDWIDTH the sum of their averages.
    peak = video.peak + (heard.peak if heard else 0)
    average = video.average + (heard.average if heard else 0)
    bandwidth, average_bandwidth = info.bandwidth, info.average_bandwidth
    if bandwidth is None:
        found.append(f"{name}: no BANDWIDTH")
    elif bandwidth < math.floor(peak):
        found.append(f"{name}: BANDWIDTH {bandwidth} is below the peak segment bit rate {peak:.0f}")
    if average_bandwidth is not None:
        if bandwidth is not None and bandwidth < average_bandwidth:
            found.append(f"{name}: BANDWIDTH {bandwidth} < AVERAGE-BANDWIDTH {average_bandwidth}")
        if abs(average_bandwidth - average) > 0.01 * average + 1:
            found.append(
                f"{name}: AVERAGE-BANDWIDTH {average_bandwidth} is not the average segment "
                f"bit rate {average:.0f}"
            )
    if not info.codecs:
        found.append(f"{name}: no CODECS")
    if info.resolution is None:
        found.append(f"{name}: no RESOLUTION")
    return found


def _media_facts(uri: str, read: Read, found: list[str]) -> MediaFacts:
    """A media playlist's bit rates; the rules it breaks appended to ``found``."""
    media = m3u8.loads(read(uri).decode("utf-8"))
    base = posixpath.dirname(uri)
    target = media.target_duration
    if target is None:
        found.append(f"{uri}: no EXT-X-TARGETDURATION")
        target = 0
    if not media.is_endlist:
        found.append(f"{uri}: a finished video's playlist has no EXT-X-ENDLIST")
    sizes: list[tuple[int, float]] = []
    for segment in media.segments:
        # 4.3.3.1: each EXTINF, rounded to the nearest integer, is at most the target.
        if round(segment.duration) > target:
            found.append(
                f"{uri}: segment {segment.uri} lasts {segment.duration} s, over the target "
                f"duration {target} s"
            )
        sizes.append((len(read(posixpath.join(base, segment.uri))) * 8, segment.duration))
    if not sizes:
        found.append(f"{uri}: no segments")
        return MediaFacts(uri, 0.0, 0.0)
    seconds = sum(length for _bits, length in sizes)
    average = sum(bits for bits, _length in sizes) / seconds
    return MediaFacts(uri, _peak(sizes, target), average)


def _peak(sizes: list[tuple[int, float]], target: float) -> float:
    """4.3.4.2: the largest bit rate of any contiguous set of segments lasting between 0.5
    and 1.5 times the target duration."""
    peak = 0.0
    for first in range(len(sizes)):
        bits = seconds = 0.0
        for size, length in sizes[first:]:
            bits, seconds = bits + size, seconds + length
            if seconds > 1.5 * target:
                break
            if seconds >= 0.5 * target:
                peak = max(peak, bits / seconds)
    return peak
