"""A video as a person sees it: the database's record merged with its job's live status.

The database is the record of what a worker finished; the running workflow knows the rest
(steps, progress, outputs not yet recorded). Both the status page and the media routes ask
here, so the merge is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client

import spool.service.jobs as jobs
from spool.db.deletions import deletion_of
from spool.db.video import cursor_of, get_video, list_videos
from spool.models import FINAL_JOB_STATES, CaptionsState, JobState, video_workflow_id
from spool.service.views import (
    CaptionsView,
    JobView,
    RenditionView,
    StepView,
    VideoCancelling,
    VideoList,
    VideoSummary,
    VideoView,
)

# A status page must answer even when Temporal is slow: it then says so and shows the record.
LIVE_STATUS_SECONDS = 4.0
# The list of started-but-unrecorded jobs is a convenience; the database is the record.
UNRECORDED_LIST_SECONDS = 3.0
# The cursor of a first page's end when it holds only jobs not recorded yet: every recorded
# video is older.
FROM_THE_TOP = {"created_at": "9999-12-30T00:00:00+00:00", "video_id": ""}
# Finished jobs' steps kept per service, so a finished job is not queried again (bounded).
FINAL_STEPS_KEPT = 10_000
MEDIA = ("rendition", "poster", "vtt", "srt", "hls", "storyboard")


def video_url(video_id: str) -> str:
    return f"/v1/videos/{video_id}"


@dataclass
class MediaKeys:
    """Storage keys of a video's outputs: the database's record, else the workflow's."""

    renditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    poster: str | None = None
    vtt: str | None = None
    srt: str | None = None
    hls: str | None = None
    storyboard: str | None = None

    def key(self, which: str, name: str | None = None) -> str | None:
        if which == "rendition":
            return (self.renditions.get(name or "") or {}).get("key")
        return getattr(self, which)


Row = dict[str, Any]


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def media_keys(row: Row | None, live: JobView | None) -> MediaKeys:
    row = row or {}
    status = live.pipeline if live is not None else None
    renditions = row.get("renditions") or [
        _plain(r) for r in getattr(status, "renditions", None) or []
    ]
    poster = getattr(status, "poster", None)
    captions = row.get("captions") or {}
    made = getattr(status, "captions", None)
    # A job that has just ended is shown in its final state before its outcome is recorded
    # (video_state): its media come from the job's own status until the row has them.
    hls = getattr(status, "hls", None)
    storyboard = getattr(status, "storyboard", None)
    # The adaptive-streaming columns come with migration 0002: read them only if present.
    return MediaKeys(
        renditions={r["name"]: r for r in renditions if r.get("name")},
        poster=row.get("poster_key") or (poster.key if poster is not None else None),
        vtt=captions.get("vtt") or (made.vtt_key if made is not None else None),
        srt=captions.get("srt") or (made.srt_key if made is not None else None),
        hls=row.get("hls_key") or (hls.key if hls is not None else None),
        storyboard=row.get("storyboard_key")
        or (storyboard.vtt_key if storyboard is not None else None),
    )


def video_state(row: Row | None, live: JobView | None) -> JobState:
    """The record's state, unless the job has already reached a final one not yet recorded."""
    state = (row or {}).get("status") or (live.state if live is not None else None)
    if live is not None and live.state in FINAL_JOB_STATES and state not in FINAL_JOB_STATES:
        return live.state
    return state or JobState.PROCESSING


def captions_state(row: Row | None, live: JobView | None) -> CaptionsState | None:
    status = live.pipeline if live is not None else None
    return (row or {}).get("captions_state") or getattr(status, "captions_state", None)


def build_view(
    video_id: str, row: Row | None, live: JobView | None, media_base: str | None = None
) -> VideoView:
    """The one place a video's status is assembled. Media URLs start at ``media_base`` when
    given (a read grant's, api/grants.py), else at the video's own URL."""
    base = media_base or video_url(video_id)
    keys = media_keys(row, live)
    row = row or {}
    status = live.pipeline if live is not None else None
    probe = getattr(status, "probe", None)
    captions = captions_state(row, live)
    has_captions = captions == CaptionsState.AVAILABLE and bool(keys.vtt)
    renditions = sorted(keys.renditions.values(), key=lambda r: -int(r.get("height") or 0))
    state = video_state(row, live)
    playable = row.get("playable_at") or getattr(status, "playable_at", None)
    shown = [
        RenditionView(
            name=r["name"],
            width=r.get("width"),
            height=r.get("height"),
            bitrate_kbps=r.get("bitrate_kbps"),
            size_bytes=r.get("size_bytes"),
            url=f"{base}/renditions/{r['name']}",
        )
        for r in renditions
    ]
    hls_url = f"{base}/hls/master.m3u8" if keys.hls else None
    return VideoView(
        video_id=video_id,
        job_id=video_workflow_id(video_id),
        state=state,
        steps=live.steps if live is not None else [],
        metadata=row.get("metadata") or _plain(probe),
        renditions=shown,
        poster_url=f"{base}/poster.jpg" if keys.poster else None,
        captions=CaptionsView(
            state=captions,
            language=row.get("captions_language"),
            vtt_url=f"{base}/captions.vtt" if has_captions else None,
            srt_url=f"{base}/captions.srt" if has_captions and keys.srt else None,
        ),
        hls_url=hls_url,
        storyboard_url=f"{base}/storyboard.vtt" if keys.storyboard else None,
        playable_at=playable,
        playable_url=playable_url(base, state, hls_url, shown, playable),
        error=live.error if live is not None else None,
        errors=dict(row.get("errors") or {}),
        status_unavailable=live.unavailable if live is not None else None,
        created_at=row.get("created_at"),
        updated_at=row.get("updated_at"),
    )


def playable_url(
    base: str,
    state: JobState,
    hls_url: str | None,
    renditions: list[RenditionView],
    playable_at: str | None,
) -> str | None:
    """The full ladder once it is there (a video from before HLS: its largest MP4, the first
    of ``renditions``); while the job runs, the live playlist once it was first published;
    else nothing (a failed or cancelled job's live playlist never ends)."""
    if hls_url:
        return hls_url
    if state == JobState.PROCESSING:
        return f"{base}/hls/live/master.m3u8" if playable_at else None
    return renditions[0].url if renditions else None


def summary(row: Row) -> VideoSummary:
    video_id = row["video_id"]
    return VideoSummary(
        video_id=video_id,
        job_id=video_workflow_id(video_id),
        state=row["status"],
        captions_state=row.get("captions_state"),
        created_at=row.get("created_at"),
        status_url=video_url(video_id),
    )


class VideoService:
    """Videos for the API: status, list, media keys and cancel."""

    def __init__(self, client: Client, engine: Engine) -> None:
        self.client = client
        self.engine = engine
        # Final jobs no longer change: their steps are kept rather than asked for again.
        self._final_steps: dict[str, list[StepView]] = {}

    async def _row(self, video_id: str) -> Row | None:
        return await asyncio.to_thread(get_video, self.engine, video_id)

    async def deleted(self, video_id: str) -> bool:
        """Whether a delete of the video was accepted: it and its media are gone for the API
        from that moment (spool/db/deletions.py)."""
        return await asyncio.to_thread(deletion_of, self.engine, video_id) is not None

    async def live(self, video_id: str) -> JobView | None:
        """The job's own view, or None when Temporal has no such job; a view saying why when
        Temporal cannot answer in time."""
        return await jobs.live_status(self.client, video_workflow_id(video_id), LIVE_STATUS_SECONDS)

    async def _live_for(self, video_id: str, row: Row | None) -> JobView | None:
        if row is None or row["status"] not in FINAL_JOB_STATES:
            return await self.live(video_id)
        if video_id in self._final_steps:
            return JobView(
                job_id=video_workflow_id(video_id),
                state=row["status"],
                steps=self._final_steps[video_id],
            )
        live = await self.live(video_id)
        # Only a closed workflow's steps are final: a job's state is decided (and recorded)
        # before its owner's notice goes out, so until then the notify step still changes.
        if live is not None and live.closed and live.steps:
            if len(self._final_steps) >= FINAL_STEPS_KEPT:
                self._final_steps.clear()
            self._final_steps[video_id] = live.steps
        return live

    async def view(self, video_id: str, media_base: str | None = None) -> VideoView | None:
        """State, steps, metadata and media URLs (under ``media_base``, if given) of one
        video; None when nothing knows it, or its delete was accepted."""
        if await self.deleted(video_id):
            return None
        row = await self._row(video_id)
        live = await self._live_for(video_id, row)
        if row is None and live is None:
            return None
        return build_view(video_id, row, live, media_base)

    async def recent(self, limit: int, cursor: str | None = None) -> VideoList:
        """A page of videos, newest first, from ``cursor`` (a keyset page; raises ValueError
        for a cursor this service did not make). The first page also shows started jobs no
        worker has recorded yet, the newest of all."""
        rows = await asyncio.to_thread(list_videos, self.engine, limit + 1, cursor)
        more, rows = len(rows) > limit, rows[:limit]
        items = [summary(row) for row in rows]
        if cursor is None:
            known = {item.video_id for item in items}
            fresh = [item for item in await self._unrecorded(limit) if item.video_id not in known]
            items = [item for item in fresh if not await self.deleted(item.video_id)] + items
            items.sort(key=lambda item: item.created_at or "", reverse=True)
            more = more or len(items) > limit
            items = items[:limit]
        shown = {item.video_id for item in items}
        last = next((row for row in reversed(rows) if row["video_id"] in shown), FROM_THE_TOP)
        return VideoList(videos=items, next_cursor=cursor_of(last) if more else None)

    async def _unrecorded(self, limit: int) -> list[VideoSummary]:
        found: list[VideoSummary] = []

        async def collect() -> None:
            async for wf in self.client.list_workflows(
                f"WorkflowType = '{jobs.VIDEO_WORKFLOW}' AND ExecutionStatus = 'Running'",
                limit=limit,
            ):
                if wf.id.startswith("video-") and not wf.id.endswith("-captions"):
                    video_id = wf.id.removeprefix("video-")
                    found.append(
                        VideoSummary(
                            video_id=video_id,
                            job_id=wf.id,
                            state=JobState.PROCESSING,
                            created_at=wf.start_time.isoformat() if wf.start_time else None,
                            status_url=video_url(video_id),
                        )
                    )

        with contextlib.suppress(Exception):
            await asyncio.wait_for(collect(), UNRECORDED_LIST_SECONDS)
        return found

    async def media_key(self, video_id: str, which: str, name: str | None = None) -> str | None:
        """The storage key of one output (``which`` in MEDIA), or None when not made yet or
        the video's delete was accepted."""
        if await self.deleted(video_id):
            return None
        row = await self._row(video_id)
        key = media_keys(row, None).key(which, name)
        if key is None and which in MEDIA:
            # Not recorded yet: the running workflow may already know it.
            key = media_keys(row, await self.live(video_id)).key(which, name)
        return key

    async def cancel(self, video_id: str) -> VideoCancelling:
        """Raises JobNotFound or JobEnded."""
        requested = await jobs.cancel(self.client, video_workflow_id(video_id))
        return VideoCancelling(video_id=video_id, job_id=requested.job_id)
