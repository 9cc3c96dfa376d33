"""The video pipeline's inputs, results and status: what crosses the Temporal boundary.

No I/O here: workflow code imports this module inside the sandbox.
"""

from dataclasses import dataclass, field
from typing import Any

from spool.models import defaults
from spool.models.captions import CaptionsResult, CaptionsState
from spool.models.chunks import ChunkPlan
from spool.models.common import JobState, StepState
from spool.models.live import LiveChunk, LivePlan

__all__ = [
    "normalize_renditions",
    "ChunkInput",
    "ChunkPlan",
    "ChunkResult",
    "FetchSourceInput",
    "FetchSourceResult",
    "EncodingPlan",
    "EncodingPlanInput",
    "AudioTrackInput",
    "AudioTrackResult",
    "HlsAudioInfo",
    "HlsVariantInfo",
    "MasterPlaylistInput",
    "MasterPlaylistResult",
    "PackageInput",
    "PackageResult",
    "RenditionPlan",
    "StoryboardInput",
    "StoryboardResult",
    "NotifyOwnerInput",
    "PosterInput",
    "PosterResult",
    "ProbeInput",
    "ProbeResult",
    "RENDITION_HEIGHTS",
    "RecordVideoInput",
    "RenditionResult",
    "VideoPipelineInput",
    "VideoStatus",
    "plan_rendition_heights",
    "plan_rungs",
    "rendition_name",
    "video_id_of",
    "video_workflow_id",
]

# The ladder, highest first, as the picture's short side: a rung names the height of a
# landscape rendition and the width of a portrait one (720x1280 is 720p), as players and
# platforms name them. A rendition is never larger than its source.
RENDITION_HEIGHTS = (1080, 720, 480, 360)


def video_workflow_id(video_id: str) -> str:
    return f"video-{video_id}"


def video_id_of(job_id: str) -> str | None:
    """The video whose job this is (``video-{id}``); None for any other job, the captions
    child (``video-{id}-captions``) included."""
    video_id = job_id.removeprefix("video-")
    if video_id == job_id or not video_id or video_id.endswith("-captions"):
        return None
    return video_id


def rendition_name(height: int) -> str:
    return f"{height}p"


def normalize_renditions(names: list[str] | None) -> list[str] | None:
    """Requested rendition names as "720p"-style names of the ladder, in order, deduplicated.

    Raises ValueError naming the first name that is not a rung of the ladder, so a request
    for "999p" is refused at the door instead of becoming a job with nothing to make.
    """
    if not names:
        return None
    normalized: list[str] = []
    for name in names:
        part = name.strip().lower()
        if not part:
            continue
        height = part.removesuffix("p")
        if not height.isdigit() or int(height) not in RENDITION_HEIGHTS:
            ladder = ", ".join(f"{h}p" for h in RENDITION_HEIGHTS)
            raise ValueError(f"renditions: {name.strip()!r} is not one of {ladder}")
        normalized.append(f"{int(height)}p")
    return list(dict.fromkeys(normalized)) or None


def plan_rendition_heights(short_side: int, requested: list[str] | None = None) -> list[int]:
    """Rungs to produce for a source whose picture's short side is ``short_side``: the ladder
    up to it, or one rendition at the source's own (even) short side when it is below the
    smallest rung."""
    heights = [h for h in RENDITION_HEIGHTS if h <= short_side]
    if requested:
        wanted = {r.lower().removesuffix("p") for r in requested}
        heights = [h for h in heights if str(h) in wanted]
    if not heights and short_side < RENDITION_HEIGHTS[-1]:
        heights = [max(2, short_side - short_side % 2)]
    return heights


def plan_rungs(width: int, height: int, requested: list[str] | None = None) -> list[int]:
    """The rungs for a source shown ``width`` x ``height``: by its short side."""
    return plan_rendition_heights(min(width, height), requested)


@dataclass
class VideoPipelineInput:
    video_id: str
    owner_id: str
    source_key: str
    captions: bool = True
    # e.g. ["720p", "360p"]; None = the whole ladder up to the source height
    renditions: list[str] | None = None
    callback_url: str | None = None
    language: str = defaults.LANGUAGE
    # Workflows cannot read settings: the starter copies the queue names in.
    queue_pipeline: str = defaults.QUEUE_PIPELINE
    queue_media: str = defaults.QUEUE_MEDIA
    queue_captions: str = defaults.QUEUE_CAPTIONS
    # Bounded retries of the captions branch; None = the policy's default.
    captions_max_attempts: int | None = None
    # Ingest from a URL: the job first fetches it to source_key (step fetch_source). None for
    # an upload, and in every history from before it existed.
    source_url: str | None = None


@dataclass
class FetchSourceInput:
    video_id: str
    source_url: str
    source_key: str


@dataclass
class FetchSourceResult:
    bytes: int
    shown_url: str  # scheme, host and port: what errors may say of the URL
    content_type: str | None = None


@dataclass
class ProbeInput:
    video_id: str
    source_key: str


@dataclass
class ProbeResult:
    duration: float
    width: int  # as displayed (rotation applied)
    height: int
    has_video: bool
    has_audio: bool
    format_name: str = ""
    video_codec: str | None = None
    audio_codec: str | None = None
    rotation: int = 0
    fps: float | None = None
    bit_rate: int | None = None
    size_bytes: int = 0
    # The video stream's own bits/s (spool/media/rates.py); None in histories from before.
    video_bit_rate: int | None = None


@dataclass
class RenditionResult:
    name: str
    key: str
    width: int
    height: int
    size_bytes: int
    bitrate_kbps: int
    duration: float
    seconds_taken: float = 0.0


@dataclass
class PosterInput:
    video_id: str
    source_key: str
    at_seconds: float


@dataclass
class PosterResult:
    key: str
    width: int
    height: int
    size_bytes: int


@dataclass
class RecordVideoInput:
    """Columns to set on the video's row; None leaves a column as it is."""

    video_id: str
    owner_id: str
    status: JobState | None = None
    metadata: ProbeResult | None = None
    renditions: list[RenditionResult] | None = None
    poster_key: str | None = None
    captions_state: CaptionsState | None = None
    captions_language: str | None = None
    errors: dict[str, str] | None = None
    hls_key: str | None = None
    storyboard_key: str | None = None
    playable_at: str | None = None  # ISO 8601, when the first pictures could be played


# --- chunked encoding (docs/pipelines.md): plan, chunks, audio, packages, storyboard, HLS ---


@dataclass
class EncodingPlanInput:
    video_id: str
    probe: ProbeResult
    heights: list[int]


@dataclass
class RenditionPlan:
    name: str  # "720p"
    height: int  # the rung: the picture's short side (spool/media/chunks.py, scale_to_rung)
    video_kbps: int  # the ceiling under crf; without crf, the fixed ladder's average rate
    crf: float | None = None  # None in histories from before content-aware rates


@dataclass
class EncodingPlan:
    """How a job is encoded, decided once by a worker from its settings and kept in the
    history, so a replay never plans again with other settings or code."""

    chunks: list[ChunkPlan]
    renditions: list[RenditionPlan]
    fps: float
    segment_seconds: float
    audio_kbps: int
    # None: no storyboard (thumbnails are made by the chunks every this many seconds).
    thumb_every: float | None = None
    thumb_width: int = 160
    storyboard_columns: int = 10
    storyboard_rows: int = 10
    live: LivePlan | None = None  # None: nothing plays before the job is ready


@dataclass
class ChunkInput:
    video_id: str
    source_key: str
    chunk: ChunkPlan
    renditions: list[RenditionPlan]
    fps: float
    segment_seconds: float
    thumb_every: float | None = None
    thumb_width: int = 160
    live: str | None = None  # the rendition to cut into live segments too
    # A chunk a viewer waits for (a job that plays early: its first chunks): encoded at the
    # worker's own CPU priority, not below it as bulk encodes are (Limits.nice).
    urgent: bool = False


@dataclass
class ChunkResult:
    index: int
    files: dict[str, str]  # rendition name -> stored key of its video-only MP4 chunk
    failed: dict[str, str] = field(default_factory=dict)  # rendition name -> error
    thumbs: int = 0
    seconds_taken: float = 0.0
    live: LiveChunk | None = None


@dataclass
class HlsAudioInfo:
    """The audio rendition as the master playlist describes it (spool/media/hls.py)."""

    bandwidth: int  # peak segment bit rate, bits/s (RFC 8216, 4.3.4.2)
    codecs: str  # RFC 6381, e.g. "mp4a.40.2"
    playlist: str  # relative to the master playlist, e.g. "audio/index.m3u8"
    average_bandwidth: int = 0  # 0 in histories from before it was measured
    channels: int = 2  # the stream's own (an upload's AAC copied live may be mono or 5.1)


@dataclass
class AudioTrackInput:
    video_id: str
    source_key: str
    audio_kbps: int
    segment_seconds: float
    duration: float = 0.0


@dataclass
class AudioTrackResult:
    key: str  # the AAC track every rendition's MP4 is muxed with
    # Set only in histories from before the hls step cut the audio rendition itself.
    hls: HlsAudioInfo | None = None


@dataclass
class HlsVariantInfo:
    """One rendition's HLS media playlist, as the master playlist describes it: made by the
    packager (spool/media/hls.py), kept in the history, read by the hls step."""

    name: str
    width: int
    height: int
    bandwidth: int  # peak segment bit rate, bits/s (RFC 8216, 4.3.4.2)
    average_bandwidth: int
    codecs: str  # RFC 6381, e.g. "avc1.64001f"
    frame_rate: float
    playlist: str  # relative to the master playlist, e.g. "720p/index.m3u8"
    # When its first picture is shown on the HLS timeline (x264's reordering delay): the
    # audio rendition is delayed to match (package_audio_hls's video_start).
    start_seconds: float = 0.0


@dataclass
class PackageInput:
    video_id: str
    rendition: RenditionPlan
    chunk_keys: list[str]  # in time order
    audio_key: str | None
    segment_seconds: float
    duration: float = 0.0


@dataclass
class PackageResult:
    rendition: RenditionResult
    variant: HlsVariantInfo


@dataclass
class StoryboardInput:
    video_id: str
    every: float
    columns: int
    rows: int
    duration: float


@dataclass
class StoryboardResult:
    vtt_key: str
    sprites: int
    tile_width: int
    tile_height: int
    every: float


@dataclass
class MasterPlaylistInput:
    video_id: str
    variants: list[HlsVariantInfo]
    audio: HlsAudioInfo | None = None  # histories from before audio_key only
    # The AAC track and segment length, to re-cut the audio rendition in step with the
    # variants' start (HlsVariantInfo.start_seconds); absent in histories from before.
    audio_key: str | None = None
    segment_seconds: float = 0.0


@dataclass
class MasterPlaylistResult:
    key: str


@dataclass
class NotifyOwnerInput:
    video_id: str
    owner_id: str
    state: JobState
    payload: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None


@dataclass
class VideoStatus:
    job_id: str
    video_id: str
    state: JobState
    steps: list[StepState]
    error: str | None = None
    captions_state: CaptionsState = CaptionsState.PENDING
    renditions: list[RenditionResult] = field(default_factory=list)
    poster: PosterResult | None = None
    probe: ProbeResult | None = None
    captions: CaptionsResult | None = None
    hls: MasterPlaylistResult | None = None
    storyboard: StoryboardResult | None = None
    # Step name -> {activity id: percentage points}: a step whose progress comes from other
    # activities (rendition-720p from its chunks); spool/service/jobs.py adds each running
    # one's share of its heartbeat percent to the step's own.
    step_shares: dict[str, dict[str, float]] = field(default_factory=dict)
    playable_at: str | None = None  # ISO 8601: the live playlist's first publish
