"""The blog publishing pipeline's inputs and results, and the rules a post must satisfy."""

from dataclasses import dataclass, field
from datetime import datetime

from spool.models import defaults
from spool.models.common import JobState, StepState

__all__ = [
    "BlogPublishInput",
    "BlogPublishStatus",
    "IndexPostResult",
    "InvalidPostError",
    "NotifyFollowersResult",
    "Post",
    "RecordPostResult",
    "blog_workflow_id",
    "followers_cap_message",
    "post_fence",
    "post_from_dict",
    "post_version_of",
    "validate_post",
]

# Defaults for the limits; the settings object may tighten them at the door.
DEFAULT_MAX_BODY_CHARS = defaults.MAX_POST_BODY_CHARS
DEFAULT_MAX_TITLE_CHARS = defaults.MAX_POST_TITLE_CHARS


@dataclass
class Post:
    post_id: str
    author_id: str
    title: str
    body: str
    version: int = 1
    tags: list[str] = field(default_factory=list)
    published_at: str | None = None  # ISO 8601
    # Followers to notify; None means "read the author's followers from the database".
    followers: list[str] | None = None
    # What orders this publish's effects against the post's other operations
    # (spool/models/posts.py); None for a publish started on its own: its version.
    fence: int | None = None


@dataclass
class BlogPublishInput:
    post: Post
    # How long index_post may keep retrying before the step is marked failed.
    index_retry_seconds: int | None = None


@dataclass
class BlogPublishStatus:
    job_id: str
    post_id: str
    version: int
    state: JobState
    steps: list[StepState]
    error: str | None = None


@dataclass
class IndexPostResult:
    post_id: str
    version: int
    # False when the index already held this version or a newer one (a retry or a late edit).
    applied: bool


@dataclass
class RecordPostResult:
    author_id: str
    post_id: str
    counted: bool  # False when an earlier attempt or version had already counted this post
    post_count: int


@dataclass
class NotifyFollowersResult:
    event_id: str
    recipients: int
    newly_created: int


class InvalidPostError(ValueError):
    """A post that cannot be published; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


_ID_MAX = 200


def _check_id(value: object, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPostError(name, "is required and must be a non-empty string")
    if len(value) > _ID_MAX:
        raise InvalidPostError(name, f"must be at most {_ID_MAX} characters")
    if any(ch.isspace() or ch in "/\\" for ch in value):
        raise InvalidPostError(name, "must not contain whitespace or slashes")


def validate_post(
    post: Post,
    max_body_chars: int = DEFAULT_MAX_BODY_CHARS,
    max_title_chars: int = DEFAULT_MAX_TITLE_CHARS,
    max_followers: int | None = None,
) -> None:
    """Raise :class:`InvalidPostError` naming the first field that is wrong.

    ``max_followers`` is checked at the door only: the workflow validates without it, so a
    run started before the cap replays as it ran."""
    _check_id(post.post_id, "post_id")
    _check_id(post.author_id, "author_id")
    if not isinstance(post.title, str) or not post.title.strip():
        raise InvalidPostError("title", "is required")
    if len(post.title) > max_title_chars:
        raise InvalidPostError("title", f"must be at most {max_title_chars} characters")
    if not isinstance(post.body, str) or not post.body.strip():
        raise InvalidPostError("body", "must not be empty")
    if len(post.body) > max_body_chars:
        raise InvalidPostError(
            "body", f"is {len(post.body)} characters; the limit is {max_body_chars}"
        )
    if isinstance(post.version, bool) or not isinstance(post.version, int) or post.version < 1:
        raise InvalidPostError("version", "must be an integer >= 1")
    if not isinstance(post.tags, list) or not all(isinstance(t, str) for t in post.tags):
        raise InvalidPostError("tags", "must be a list of strings")
    if post.followers is not None:
        if not isinstance(post.followers, list):
            raise InvalidPostError("followers", "must be a list of follower ids")
        if max_followers is not None and len(post.followers) > max_followers:
            raise InvalidPostError("followers", followers_cap_message(max_followers))
        for follower in post.followers:
            _check_id(follower, "followers")
    if post.published_at is not None:
        try:
            datetime.fromisoformat(str(post.published_at))
        except ValueError:
            raise InvalidPostError("published_at", "must be an ISO 8601 date-time") from None


def followers_cap_message(cap: int) -> str:
    """What a post with too long a ``followers`` list is told: where a big audience goes."""
    return (
        f"at most {cap} followers in a post; store a larger audience in the follower graph "
        "(PUT /v1/authors/{author_id}/followers/{follower_id}, or the bulk import) and omit "
        "followers"
    )


_POST_FIELDS = {
    "post_id",
    "author_id",
    "title",
    "body",
    "version",
    "tags",
    "published_at",
    "followers",
}


def post_from_dict(data: object) -> Post:
    """Build a Post from decoded JSON, naming unknown or missing fields."""
    if not isinstance(data, dict):
        raise InvalidPostError("post", "must be a JSON object")
    unknown = sorted(set(data) - _POST_FIELDS)
    if unknown:
        raise InvalidPostError(unknown[0], "is not a known post field")
    for required in ("post_id", "author_id", "title", "body"):
        if required not in data:
            raise InvalidPostError(required, "is required")
    return Post(**data)


def post_fence(post: Post) -> int:
    return post.fence if post.fence is not None else post.version


def blog_workflow_id(post_id: str, version: int) -> str:
    return f"post-{post_id}-v{version}"


def post_version_of(job_id: str) -> tuple[str, int] | None:
    """The post and version a publishing job is for (``post-{id}-v{version}``); None for any
    other job."""
    rest = job_id.removeprefix("post-")
    post_id, _, version = rest.rpartition("-v")
    if rest == job_id or not post_id or not (version.isascii() and version.isdigit()):
        return None
    return (post_id, int(version)) if not version.startswith("0") else None
