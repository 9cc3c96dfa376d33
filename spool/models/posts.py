"""A post over its whole life: its states, the operations on it, and the fence that orders
every effect of them (docs/posts.md)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from spool.models.blog import Post

__all__ = [
    "ENTITY_FENCE_BASE",
    "check_publish_at",
    "MAX_SCHEDULE_AHEAD",
    "OpResult",
    "PostEffect",
    "PostEntityInput",
    "PostEntityState",
    "PostFence",
    "PostOp",
    "PostOpKind",
    "PostState",
    "entity_fence",
    "parse_publish_at",
    "post_entity_id",
]

# A publish started as one job per version (BlogPublishWorkflow alone) is fenced by its
# version, at most 2**62 (the API's bound). Every effect the post's own workflow orders is
# fenced above any version, so no late write of such a job can undo one of them; the sum
# stays below Elasticsearch's largest external version (2**63 - 1).
ENTITY_FENCE_BASE = 2**62
MAX_SCHEDULE_AHEAD = timedelta(days=366)


class PostState(StrEnum):
    """What a post is now; the values are the API's ``state`` and are in saved histories."""

    NONE = "none"  # the workflow knows no operation yet
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"
    DELETED = "deleted"


class PostOpKind(StrEnum):
    PUBLISH = "publish"  # publish now, or edit (a newer version), or republish
    UNPUBLISH = "unpublish"
    DELETE = "delete"
    SCHEDULE = "schedule"  # move the time of a scheduled publish
    CANCEL_SCHEDULE = "cancel_schedule"


@dataclass
class PostOp:
    """One operation on one post, as its workflow receives it (an Update, or a signal)."""

    kind: PostOpKind
    post_id: str
    # The request's own id: a repeat of the same request (a retry, the signal sent after an
    # update that was not acknowledged in time) is applied once.
    request_id: str
    post: Post | None = None  # PUBLISH only
    publish_at: str | None = None  # PUBLISH (optional) and SCHEDULE: ISO 8601 with a zone


@dataclass
class OpResult:
    job_id: str
    post_id: str
    state: PostState
    generation: int
    version: int | None = None
    publish_at: str | None = None
    # True when the operation changed nothing (a repeat, or the post is already so).
    absorbed: bool = False
    request_id: str = ""


@dataclass
class PostEntityState:
    """What the post's workflow knows, carried across continue-as-new."""

    post_id: str
    state: PostState = PostState.NONE
    generation: int = 0
    post: Post | None = None
    version: int = 0
    publish_at: str | None = None
    job_id: str | None = None  # the newest publish's job
    # Published once already: its followers were told then, and never are again.
    announced: bool = False
    results: list[OpResult] = field(default_factory=list)  # the latest requests' answers
    children: list[str] = field(default_factory=list)  # publishing jobs running


@dataclass
class PostEntityInput:
    post_id: str
    carried: PostEntityState | None = None
    index_retry_seconds: int | None = None
    # How long a run waits for another operation once idle before it completes (None: the
    # workflow's default).
    idle_seconds: int | None = None


@dataclass
class PostFence:
    """What the database holds of a post as a run of its workflow starts: the highest fence
    written (0: none), and the state and version written at it."""

    post_id: str
    fence: int = 0
    state: PostState = PostState.NONE
    author_id: str | None = None
    version: int = 0
    announced: bool = False  # the post was published once (its followers told then)


@dataclass
class PostEffect:
    """A post's state written to the database and the index, at a fence: applied unless a
    newer fence is already there."""

    post_id: str
    state: PostState
    fence: int
    post: Post | None = None
    publish_at: str | None = None


def post_entity_id(post_id: str) -> str:
    return f"post-{post_id}"


def entity_fence(generation: int) -> int:
    return ENTITY_FENCE_BASE + generation


def parse_publish_at(value: str) -> datetime:
    """An aware datetime; ValueError naming what is wrong."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"publish_at: {value!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"publish_at: {value!r} has no time zone (add Z or +02:00)")
    return when


def check_publish_at(value: str | None, now: datetime, *, future: bool) -> str | None:
    """publish_at as stored (None: publish now), or ValueError naming what is wrong. A time
    more than a year ahead is refused; one not after now means "now", unless ``future`` (a
    reschedule), which refuses it."""
    if value is None:
        if future:
            raise ValueError("publish_at: is required")
        return None
    when = parse_publish_at(value)
    if when > now + MAX_SCHEDULE_AHEAD:
        raise ValueError(f"publish_at: {value} is more than a year ahead")
    if when <= now:
        if future:
            raise ValueError(f"publish_at: {value} is in the past")
        return None
    return when.isoformat()
