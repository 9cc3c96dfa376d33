"""A video that plays before it is ready (docs/pipelines.md, "Playable within seconds"): one
rendition's chunks published as a growing HLS playlist, in order, as they are encoded.

No I/O here: workflow code imports this module inside the sandbox. No
``from __future__ import annotations`` (docs/ARCHITECTURE.md, "Boundary models").
"""

from dataclasses import dataclass, field

__all__ = [
    "LiveAudio",
    "LiveChunk",
    "LivePlan",
    "LivePublishInput",
    "LivePublishResult",
    "LiveSegment",
]


@dataclass
class LivePlan:
    """The rendition published while the job runs, and how many chunks at the start of the
    plan are short ones, encoded first and in order, so the first picture is out soon."""

    rendition: str  # "480p"
    first_chunks: int = 0


@dataclass
class LiveSegment:
    """One media segment of a live playlist: its URI relative to the playlist, its length."""

    uri: str
    seconds: float
    bytes: int = 0


@dataclass
class LiveChunk:
    """One chunk of the live rendition, cut into fMP4 segments on its keyframes, timed on
    the whole video's time line: its own init segment and its segments, in order."""

    init: str  # "c00003-init.mp4", relative to the live rendition's playlist
    segments: list[LiveSegment]
    width: int = 0
    height: int = 0
    codecs: str = ""  # RFC 6381, from the chunk's own avcC
    # A digest of its decoder configuration (avcC): chunks alike share one init segment.
    config: str = ""
    # How late its first picture shows (x264's reordering delay): the sound is delayed alike.
    lead_seconds: float = 0.0


@dataclass
class LiveAudio:
    """The audio track as cut once for the live playlists (its segments are listed in the
    store, not here: a long video's list would grow every publish's input)."""

    codecs: str = "mp4a.40.2"
    bandwidth: int = 0
    # The seconds of the track read for the cut stored (None: the whole track): a first
    # publish cuts only a little past its pictures, later ones more as they need it.
    cut_until: float | None = None
    channels: int = 2  # the track's own: an upload's AAC is copied as it is


@dataclass
class LivePublishInput:
    """The chunks done in order since the last publish (``chunks``, from index
    ``first_index``), appended to the live playlists. ``complete``: they are the last, so the
    playlists end (EXT-X-ENDLIST)."""

    video_id: str
    rendition: str
    chunks: list[LiveChunk]
    first_index: int
    ceiling_kbps: int  # the rendition's rate ceiling: what its BANDWIDTH is bounded by
    frame_rate: float
    segment_seconds: float
    audio_key: str | None = None  # the AAC track, cut on the first publish
    # Instead, the upload itself, whose own AAC is copied: the whole track is not waited for.
    source_key: str | None = None
    # With source_key, an upload whose sound is not AAC: its first part is encoded at this
    # rate as the whole track will be (AudioTrackInput), ``duration`` long at most.
    encode_kbps: int = 0
    duration: float = 0.0
    audio: LiveAudio | None = None  # what the first publish cut
    complete: bool = False
    previous_config: str = ""  # the config of the chunk before first_index


@dataclass
class LivePublishResult:
    master_key: str
    audio: LiveAudio | None = None
    seconds: float = 0.0  # how much of the video the playlists now reach
    segments: int = field(default=0)
