"""A video's view the moment its job has ended: shown in its final state before the outcome
is recorded, it must already name every output the job made, from the job's own status."""

from __future__ import annotations

import pytest

from spool.models import JobState
from spool.models.video import MasterPlaylistResult, StoryboardResult, VideoStatus
from spool.service.videos import build_view, media_keys
from spool.service.views import JobView

pytestmark = pytest.mark.unit


def ended_job(video_id: str) -> JobView:
    status = VideoStatus(
        job_id=f"video-{video_id}",
        video_id=video_id,
        state=JobState.READY,
        steps=[],
        hls=MasterPlaylistResult(key=f"videos/{video_id}/hls/master.m3u8"),
        storyboard=StoryboardResult(
            vtt_key=f"videos/{video_id}/storyboard/storyboard.vtt",
            sprites=1,
            tile_width=160,
            tile_height=90,
            every=2.0,
        ),
    )
    return JobView(job_id=f"video-{video_id}", state=JobState.READY, pipeline=status)


def test_an_ended_job_not_yet_recorded_names_its_playlist_and_storyboard():
    row = {"video_id": "v1", "status": "processing", "owner_id": "o"}
    keys = media_keys(row, ended_job("v1"))
    assert keys.hls == "videos/v1/hls/master.m3u8"
    assert keys.storyboard == "videos/v1/storyboard/storyboard.vtt"
    view = build_view("v1", row, ended_job("v1"))
    assert view.state == JobState.READY
    assert view.hls_url == "/v1/videos/v1/hls/master.m3u8"
    assert view.storyboard_url == "/v1/videos/v1/storyboard.vtt"


def test_the_record_wins_once_it_has_the_outputs():
    row = {"video_id": "v1", "status": "ready", "hls_key": "recorded.m3u8"}
    assert media_keys(row, ended_job("v1")).hls == "recorded.m3u8"
