"""Deleting videos in tests: a video's objects and rows seeded, what is left of it read, its
deletion's worker, and a pipeline held at an explicit gate so a delete can arrive while its
job runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass, field

from temporalio import activity
from temporalio.client import Client, WorkflowHistory

from activities.video import DeletionActivities
from activities.video.records import RecordActivities
from activities.webhooks import WebhookActivities
from spool.config import Settings
from spool.db import get_engine
from spool.db.deletions import deletion_of
from spool.db.video import ensure_video, get_caption_segments, get_video, replace_caption_segments
from spool.models import (
    AudioTrackInput,
    AudioTrackResult,
    ChunkInput,
    ChunkPlan,
    ChunkResult,
    EncodingPlan,
    EncodingPlanInput,
    HlsVariantInfo,
    MasterPlaylistInput,
    MasterPlaylistResult,
    PackageInput,
    PackageResult,
    PosterInput,
    PosterResult,
    ProbeInput,
    ProbeResult,
    RenditionPlan,
    RenditionResult,
    StoryboardInput,
    StoryboardResult,
)
from spool.storage import ObjectStorage, keys, open_storage
from spool.storage.transfers import Transfers
from tests.support.paths import HISTORIES
from tests.support.workers import running_worker
from workflows.deletion import VideoDeletionWorkflow


def seed_video(settings: Settings, video_id: str, owner_id: str = "owner") -> list[str]:
    """A finished video's objects (source, renditions, HLS, storyboard, captions, work/) and
    rows (record, caption segments); the keys stored."""
    storage = open_storage(settings)
    stored = [
        keys.source_key(video_id),
        keys.rendition_key(video_id, "360p"),
        keys.poster_key(video_id),
        keys.hls_master_key(video_id),
        keys.hls_key(video_id, "360p/index.m3u8"),
        *(keys.hls_key(video_id, f"360p/seg-{n:05d}.m4s") for n in range(5)),
        keys.storyboard_vtt_key(video_id),
        keys.captions_key(video_id, "en", "vtt"),
        keys.chunk_key(video_id, 0, "360p"),
    ]
    for key in stored:
        storage.put_bytes(f"{key}\n".encode(), key)
    engine = get_engine(settings)
    ensure_video(engine, video_id, owner_id, "ready")
    replace_caption_segments(engine, video_id, [{"start": 0, "end": 1, "text": "hello"}])
    return sorted(stored)


def leftovers(settings: Settings, video_id: str) -> dict[str, object]:
    """What is left of a video: its objects, its row and its caption segments."""
    engine = get_engine(settings)
    return {
        "objects": open_storage(settings).list_prefix(keys.video_prefix(video_id)),
        "row": get_video(engine, video_id),
        "segments": get_caption_segments(engine, video_id),
    }


def deletion_state(settings: Settings, video_id: str) -> str | None:
    found = deletion_of(get_engine(settings), video_id)
    return found["state"] if found else None


def notices(settings: Settings, event_type: str) -> list[dict]:
    """The log notifier's deliveries of one event type (its JSON-lines outbox)."""
    outbox = settings.resolved_notify_outbox
    lines = outbox.read_text().splitlines() if outbox.exists() else []
    return [n for n in map(json.loads, lines) if n["event_type"] == event_type]


def deletion_activities(settings: Settings) -> list:
    """The deletion job's activities as a pipeline worker registers them."""
    acts = DeletionActivities(settings, Transfers.from_settings(settings))
    return [
        acts.mark_deleting,
        acts.stop_job,
        acts.delete_objects,
        acts.delete_records,
        *WebhookActivities(settings).activities(),
    ]


@contextlib.asynccontextmanager
async def deletion_worker(client: Client, settings: Settings):
    async with running_worker(
        client,
        settings.queue_pipeline,
        workflows=[VideoDeletionWorkflow],
        activities=deletion_activities(settings),
    ):
        yield


def keep_history(name: str, history: WorkflowHistory) -> None:
    """Keep one completed history per scenario for the replay test (rule 7)."""
    path = HISTORIES / f"{name}.json"
    if path.exists() and not os.environ.get("SPOOL_SAVE_HISTORIES"):
        return
    path.write_text(history.to_json())


@dataclass
class HeldVideo:
    """The video pipeline's activities with one chunk held at a gate: light stand-ins that
    store small objects for real (so a deletion has something to remove), the real record
    and notice. On its cancel the held chunk waits for ``finish_upload``, then stores one
    more object before it acknowledges: a worker finishing an upload after the cancel."""

    settings: Settings
    storage: ObjectStorage = field(init=False)
    chunk_running: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_seen: asyncio.Event = field(default_factory=asyncio.Event)
    finish_upload: asyncio.Event = field(default_factory=asyncio.Event)
    late_key: str | None = None

    def __post_init__(self) -> None:
        self.storage = open_storage(self.settings)
        self.records = RecordActivities(self.settings, Transfers.from_settings(self.settings))

    def activities(self) -> list:
        return [
            self.probe,
            self.records.record,
            self.records.notify_owner,
            self.plan_encoding,
            self.encode_chunk,
            self.encode_audio,
            self.extract_poster,
            self.package_rendition,
            self.make_storyboard,
            self.publish_hls,
        ]

    def _store(self, key: str) -> str:
        self.storage.put_bytes(b"x", key)
        return key

    @activity.defn(name="video.probe")
    async def probe(self, inp: ProbeInput) -> ProbeResult:
        return ProbeResult(duration=4.0, width=640, height=360, has_video=True, has_audio=True)

    @activity.defn(name="video.plan_encoding")
    async def plan_encoding(self, inp: EncodingPlanInput) -> EncodingPlan:
        return EncodingPlan(
            chunks=[ChunkPlan(0, 0.0, inp.probe.duration)],
            renditions=[RenditionPlan("360p", 360, 800)],
            fps=30.0,
            segment_seconds=2.0,
            audio_kbps=128,
        )

    @activity.defn(name="video.encode_chunk")
    async def encode_chunk(self, inp: ChunkInput) -> ChunkResult:
        key = keys.chunk_key(inp.video_id, inp.chunk.index, "360p")
        # Outside work/, which the job's own final record clears: only the deletion can.
        late = keys.hls_key(inp.video_id, "360p/seg-00000.m4s")
        self.chunk_running.set()
        try:
            while True:  # heartbeats are how the cancel arrives
                activity.heartbeat({"percent": 10.0})
                await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.cancel_seen.set()
            await self.finish_upload.wait()  # an upload in flight ends after the cancel
            self.late_key = self._store(late)
            raise
        return ChunkResult(index=inp.chunk.index, files={"360p": key})

    @activity.defn(name="video.encode_audio")
    async def encode_audio(self, inp: AudioTrackInput) -> AudioTrackResult:
        return AudioTrackResult(key=self._store(keys.audio_track_key(inp.video_id)))

    @activity.defn(name="video.extract_poster")
    async def extract_poster(self, inp: PosterInput) -> PosterResult:
        key = self._store(keys.poster_key(inp.video_id))
        return PosterResult(key=key, width=2, height=2, size_bytes=1)

    @activity.defn(name="video.package_rendition")
    async def package_rendition(self, inp: PackageInput) -> PackageResult:
        key = self._store(keys.rendition_key(inp.video_id, "360p"))
        return PackageResult(
            rendition=RenditionResult("360p", key, 640, 360, 1, 1, inp.duration),
            variant=HlsVariantInfo("360p", 640, 360, 1, 1, "avc1", 30.0, "360p/index.m3u8"),
        )

    @activity.defn(name="video.make_storyboard")
    async def make_storyboard(self, inp: StoryboardInput) -> StoryboardResult:
        key = self._store(keys.storyboard_vtt_key(inp.video_id))
        return StoryboardResult(key, 1, 2, 2, inp.every)

    @activity.defn(name="video.publish_hls")
    async def publish_hls(self, inp: MasterPlaylistInput) -> MasterPlaylistResult:
        return MasterPlaylistResult(key=self._store(keys.hls_master_key(inp.video_id)))
