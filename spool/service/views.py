"""What the service layer answers: typed views of jobs, videos and posts.

Built in one place (spool/service/) and answered as they are by the HTTP API (they are its
response models, so /openapi.json describes them). starter.py prints the same views, whether
it reads them through Temporal or through the API: a video's job is a ``VideoView``, a post
version's publishing job a ``PostJobView``. URLs in them are paths under the API's base
(``/v1/...``) either way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spool.models import CaptionsState, JobState, PostOpKind, PostState, StepStatus


class View(BaseModel):
    model_config = ConfigDict(use_enum_values=True)


class StepView(View):
    """One step of a job: the workflow's record, with the server's retry state merged in."""

    name: str
    state: StepStatus
    attempt: int = 0
    last_error: str | None = None
    percent: float | None = None
    detail: str | None = None


class JobView(View):
    """A job as Temporal knows it: state and steps, whichever pipeline it runs."""

    job_id: str
    state: JobState
    steps: list[StepView] = Field(default_factory=list)
    error: str | None = None
    # Why the steps could not be read just now (no worker yet, Temporal slow); None when read.
    unavailable: str | None = None
    workflow_type: str | None = None
    workflow_status: str | None = None
    run_id: str | None = None
    # The workflow's own status (VideoStatus, BlogPublishStatus) when it could be read: the
    # pipeline's fields (renditions, captions, probe…) for the views built on this one.
    pipeline: Any = Field(default=None, exclude=True)

    @property
    def closed(self) -> bool:
        return self.workflow_status not in (None, "RUNNING")


class StartedJob(View):
    job_id: str
    # None when the job had already finished before this request (the finished job stands).
    run_id: str | None = None


class CancelRequested(View):
    job_id: str
    state: Literal["cancelling"] = "cancelling"


# --- videos ---------------------------------------------------------------------------------


class RenditionView(View):
    name: str = Field(examples=["720p"])
    width: int | None = None
    height: int | None = None
    bitrate_kbps: int | None = None
    size_bytes: int | None = None
    url: str = Field(description="the MP4, served with byte ranges")


class CaptionsView(View):
    state: CaptionsState | None = None
    language: str | None = None
    vtt_url: str | None = None
    srt_url: str | None = None


class VideoView(View):
    """One video: its job's state and steps, what the probe found, and where its media is."""

    video_id: str
    job_id: str
    state: JobState
    steps: list[StepView] = Field(default_factory=list)
    metadata: dict[str, Any] | None = Field(None, description="what the probe found")
    renditions: list[RenditionView] = Field(default_factory=list)
    poster_url: str | None = None
    captions: CaptionsView
    hls_url: str | None = Field(None, description="the HLS master playlist, once made")
    storyboard_url: str | None = Field(None, description="the storyboard WebVTT, once made")
    playable_at: str | None = Field(
        None, description="when the video could first be played (before it was ready)"
    )
    playable_url: str | None = Field(
        None,
        description="what to play now: the live HLS playlist (one rendition, growing) while "
        "the job runs, the full ladder's master playlist once it is ready",
    )
    error: str | None = None
    errors: dict[str, str] = Field(default_factory=dict, description="failed steps' errors")
    status_unavailable: str | None = Field(
        None, description="why the live steps could not be read just now"
    )
    created_at: str | None = None
    updated_at: str | None = None


class VideoSummary(View):
    video_id: str
    job_id: str
    state: JobState
    captions_state: CaptionsState | None = None
    created_at: str | None = None
    status_url: str


class VideoList(View):
    videos: list[VideoSummary]
    next_cursor: str | None = Field(
        None, description="pass as `cursor` for the next page; null on the last page"
    )


class VideoAccepted(View):
    video_id: str
    job_id: str
    status_url: str
    state: JobState
    bytes: int = Field(description="bytes of the stored upload (0 for a source_url)")
    delete_after: str | None = Field(
        None, description="when the video will be deleted (its retention), if ever"
    )


class VideoDeleting(View):
    """A delete accepted: the video and its media answer 404 from now on; the job removes
    its objects and rows, then announces ``video.deleted``."""

    video_id: str
    job_id: str
    state: Literal["deleting"] = "deleting"


class VideoCancelling(View):
    video_id: str
    job_id: str
    state: Literal["cancelling"] = "cancelling"


# --- posts ----------------------------------------------------------------------------------


class PostAccepted(View):
    job_id: str
    post_id: str
    version: int
    status_url: str
    # What the post's workflow made of it (scheduled or published); None when no worker
    # acknowledged it in time and it was handed over durably (docs/posts.md).
    state: PostState | None = None
    publish_at: str | None = None


class PostOpAccepted(View):
    """An unpublish, a delete or a change of schedule, acknowledged at once."""

    job_id: str
    post_id: str
    operation: PostOpKind
    state: PostState | None = Field(
        None, description="the post's state after it; None until a worker has applied it"
    )
    publish_at: str | None = None
    absorbed: bool = Field(False, description="true when it changed nothing (a repeat)")
    status_url: str


class PostSummary(View):
    post_id: str
    author_id: str
    state: PostState
    version: int
    title: str
    publish_at: str | None = None
    url: str


class PostList(View):
    """One page of posts in post id order; ``next_cursor`` asks for the next."""

    posts: list[PostSummary]
    next_cursor: str | None = None


class PostJobView(View):
    """The job publishing one version of a post: its state and its steps (index_post,
    record_post_for_author, notify_followers), whatever became of the post since."""

    post_id: str
    version: int
    job_id: str
    state: JobState
    steps: list[StepView] = Field(default_factory=list)
    error: str | None = None
    status_unavailable: str | None = Field(
        None, description="why the live steps could not be read just now"
    )
    post_url: str = Field(description="the post itself, asked for at this version")


class PostView(View):
    """A post: its record and, once indexed, its text; before either, its job's state."""

    post_id: str
    indexed: bool
    job_id: str
    author_id: str | None = None
    version: int | None = None
    title: str | None = None
    body: str | None = None
    tags: list[str] | None = None
    published_at: str | None = None
    # The post's state once recorded (scheduled, published, unpublished); the publishing
    # job's state while a version asked for is not recorded yet (a job just started).
    state: PostState | JobState | None = None
    publish_at: str | None = Field(default=None, description="when a scheduled post is published")


class SearchHit(View):
    post_id: str
    title: str
    author_id: str
    version: int
    tags: list[str]
    url: str


class SearchResults(View):
    query: str
    results: list[SearchHit]


class AuthorView(View):
    author_id: str
    post_count: int
