"""One rendition made by the real activities, the way a job makes it: planned, encoded chunk
by chunk, joined with the audio track and packaged (the progressive MP4 it stores)."""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment

from activities.video import VideoActivitySet
from spool.models.video import (
    AudioTrackInput,
    ChunkInput,
    EncodingPlanInput,
    PackageInput,
    ProbeResult,
    RenditionResult,
)


async def make_rendition(
    acts: VideoActivitySet, video_id: str, source_key: str, probe: ProbeResult, height: int
) -> RenditionResult:
    """The rendition of ``height`` of a stored upload, with the worker's settings."""
    env = ActivityEnvironment()
    plan = await env.run(acts.probing.plan_encoding, EncodingPlanInput(video_id, probe, [height]))
    [rendition] = plan.renditions
    chunk_keys = []
    for chunk in plan.chunks:
        made = await env.run(
            acts.encoding.encode_chunk,
            ChunkInput(
                video_id, source_key, chunk, plan.renditions, plan.fps, plan.segment_seconds
            ),
        )
        chunk_keys.append(made.files[rendition.name])
    audio_key = None
    if probe.has_audio:
        audio = await env.run(
            acts.encoding.encode_audio,
            AudioTrackInput(
                video_id, source_key, plan.audio_kbps, plan.segment_seconds, probe.duration
            ),
        )
        audio_key = audio.key
    packaged = await env.run(
        acts.packaging.package_rendition,
        PackageInput(
            video_id, rendition, chunk_keys, audio_key, plan.segment_seconds, probe.duration
        ),
    )
    return packaged.rendition
