"""Handing a video over: store the upload under a Spool-made key, then start its job once."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from spool.config import Settings
from spool.models.video import (
    VideoPipelineInput,
    VideoStatus,
    normalize_renditions,
)
from spool.service import jobs
from spool.storage import keys, open_storage


def new_video_id() -> str:
    return uuid.uuid4().hex[:16]


def ingest_video(
    settings: Settings,
    path: str | Path,
    *,
    owner_id: str,
    captions: bool = True,
    renditions: list[str] | None = None,
    callback_url: str | None = None,
    video_id: str | None = None,
) -> VideoPipelineInput:
    """Copy a local file into storage at ``videos/{id}/source``; the job's input, not started.

    The client's file name is never used: ffmpeg only ever sees names Spool made.
    """
    # Options are checked before the file is copied, so a refused request stores nothing.
    inp = video_job_input(
        settings,
        video_id or new_video_id(),
        owner_id=owner_id,
        captions=captions,
        renditions=renditions,
        callback_url=callback_url,
    )
    open_storage(settings).put_file(Path(path), inp.source_key)
    return inp


def video_job_input(
    settings: Settings,
    video_id: str,
    *,
    owner_id: str,
    captions: bool = True,
    renditions: list[str] | None = None,
    callback_url: str | None = None,
    source_url: str | None = None,
) -> VideoPipelineInput:
    """The job's input for a source stored at ``videos/{id}/source`` (or fetched there from
    ``source_url`` by the job's first step).

    Raises ValueError when a requested rendition is not on the ladder.
    """
    return VideoPipelineInput(
        video_id=video_id,
        owner_id=owner_id,
        source_key=keys.source_key(video_id),
        captions=captions,
        renditions=normalize_renditions(renditions),
        callback_url=callback_url,
        language=settings.whisper_language,
        queue_pipeline=settings.queue_pipeline,
        queue_media=settings.queue_media,
        queue_captions=settings.queue_captions,
        source_url=source_url,
    )


async def start_video_job(
    client: Client, settings: Settings, inp: VideoPipelineInput
) -> WorkflowHandle:
    """Start the job (workflow id ``video-{id}``) under the one id policy of every pipeline
    (spool/service/jobs.py); a repeated start returns the same job. The handle's result is
    the job's VideoStatus."""
    started = await jobs.start_video(client, settings, inp)
    return client.get_workflow_handle(started.job_id, result_type=VideoStatus)
