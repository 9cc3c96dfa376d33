"""The three independent steps of publishing a post.

Each is idempotent under retry on its own business key (docs/ARCHITECTURE.md, rule 2), so
Temporal can retry any one of them, for as long as it takes, without repeating the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spool import fanout
from spool.config import Settings
from spool.db import get_engine
from spool.db.blog import (
    PostWrite,
    get_post,
    record_post_for_author,
    write_post_state,
)
from spool.fanout_child import fan_out_in_child
from spool.models import (
    INVALID_POST,
    IndexPostResult,
    InvalidPostError,
    NotifyFollowersResult,
    Post,
    PostEffect,
    PostFence,
    PostState,
    RecordPostResult,
    validate_post,
)
from spool.notify import Notifier, make_notifier, notify_once
from spool.search import IndexUnavailable, PostDocument, PostIndex, open_index

# notify_followers' heartbeat timeout (15 s, workflows/policies.py) counts from the attempt's
# start, so a fan-out needs no heartbeat until it has run for a while. Heartbeating at most
# this often spares the server a heartbeat write for every quick fan-out (most posts), while
# a long one still beats far inside the timeout.
FAN_OUT_HEARTBEAT_SECONDS = 1.0


def throttled_heartbeat(
    every: float, beat: Callable[[int], object], clock: Callable[[], float] = time.monotonic
) -> Callable[[int], None]:
    """A progress callback that passes the delivered count on to ``beat`` at most once per
    ``every`` seconds, the first time ``every`` seconds after it was made."""
    last = clock()

    def progress(delivered: int) -> None:
        nonlocal last
        now = clock()
        if now - last >= every:
            last = now
            beat(delivered)

    return progress


def _index_unavailable(exc: IndexUnavailable) -> ApplicationError:
    # Retryable: the policy keeps trying with backoff while the index is down.
    return ApplicationError(f"search index unavailable: {exc}", type="IndexUnavailable")


def post_published_event_id(post_id: str) -> str:
    # Keyed on the post, not the version: an edit is not announced again.
    return f"post-published:{post_id}"


class BlogActivities:
    """Holds its clients; the worker builds it once and registers the bound methods."""

    def __init__(
        self,
        settings: Settings,
        *,
        index: PostIndex | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.engine = get_engine(settings)
        self.index = index if index is not None else open_index(settings)
        self.notifier = notifier if notifier is not None else make_notifier(settings)
        # A child process builds its notifier from the settings: only then can it stand in.
        self._notifier_from_settings = notifier is None

    def activities(self) -> list:
        return [
            self.index_post,
            self.record_post_for_author,
            self.notify_followers,
            self.record_post_state,
            self.retract_post,
            self.read_post_fence,
        ]

    def _checked(self, post: Post) -> Post:
        try:
            validate_post(
                post, self.settings.max_post_body_chars, self.settings.max_post_title_chars
            )
        except InvalidPostError as exc:
            # The step's name is added by the workflow (its error) and the UI (the event).
            raise ApplicationError(
                f"post {post.post_id} v{post.version}: {exc}",
                {"field": exc.field},
                type=INVALID_POST,
                non_retryable=True,
            ) from None
        return post

    @activity.defn(name="index_post")
    def index_post(self, post: Post) -> IndexPostResult:
        post = self._checked(post)
        try:
            applied = self.index.upsert(
                PostDocument(
                    post_id=post.post_id,
                    version=post.version,
                    author_id=post.author_id,
                    title=post.title,
                    body=post.body,
                    tags=list(post.tags),
                    published_at=post.published_at,
                    fence=post.fence,
                )
            )
        except IndexUnavailable as exc:
            raise _index_unavailable(exc) from None
        return IndexPostResult(post_id=post.post_id, version=post.version, applied=applied)

    @activity.defn(name="record_post_for_author")
    def record_post_for_author(self, post: Post) -> RecordPostResult:
        post = self._checked(post)
        outcome = record_post_for_author(
            self.engine,
            author_id=post.author_id,
            post_id=post.post_id,
            version=post.version,
            title=post.title,
            tags=list(post.tags),
            published_at=post.published_at,
            fence=post.fence,
        )
        return RecordPostResult(
            author_id=post.author_id,
            post_id=post.post_id,
            counted=outcome.counted,
            post_count=outcome.post_count,
        )

    @activity.defn(name="notify_followers")
    def notify_followers(self, post: Post) -> NotifyFollowersResult:
        post = self._checked(post)
        event = fanout.Event(
            event_id=post_published_event_id(post.post_id),
            event_type="post.published",
            payload={
                "post_id": post.post_id,
                "author_id": post.author_id,
                "title": post.title,
                "version": post.version,
            },
        )
        if post.followers is not None:
            # A short explicit list (capped at the door), already in this attempt's input.
            outcome = notify_once(
                self.engine,
                self.notifier,
                event_id=event.event_id,
                event_type=event.event_type,
                recipients=post.followers,
                payload=event.payload,
                on_progress=throttled_heartbeat(FAN_OUT_HEARTBEAT_SECONDS, activity.heartbeat),
            )
        else:
            # The follower graph, a keyset page at a time, resumed from the cursor an
            # earlier attempt heartbeated.
            outcome = self._fan_out(event, post.author_id)
        return NotifyFollowersResult(
            event_id=event.event_id,
            recipients=outcome.recipients,
            newly_created=outcome.newly_created,
        )

    def _fan_out(self, event: fanout.Event, author_id: str) -> fanout.FanOutOutcome:
        """The follower graph, a keyset page at a time, resumed from the cursor an earlier
        attempt heartbeated; a large audience by a process of its own (spool/fanout_child.py)."""
        hooks = fanout.FanOutHooks(
            beat=activity.heartbeat,
            resumed_from=activity.info().heartbeat_details,
            cancelled=activity.is_cancelled,
        )
        cursor = fanout.starting_cursor(self.engine, author_id, hooks)
        hooks.resumed_from = [cursor.details()]
        remaining = cursor.total - cursor.walked
        if self._notifier_from_settings and remaining > self.settings.fanout_child_above:
            return fan_out_in_child(self.settings, event, author_id, hooks, cursor)
        return fanout.fan_out_to_followers(
            self.engine,
            self.notifier,
            event,
            author_id,
            hooks,
            page_size=self.settings.fanout_page_size,
        )

    @activity.defn(name="record_post_state")
    def record_post_state(self, effect: PostEffect) -> RecordPostResult:
        """A post no longer published (scheduled, unpublished, deleted) at its fence, and its
        author's count with it; an older fence arriving late changes nothing."""
        post = effect.post
        outcome = write_post_state(
            self.engine,
            PostWrite(
                post_id=effect.post_id,
                state=str(effect.state),
                fence=effect.fence,
                author_id=post.author_id if post else None,
                version=post.version if post else None,
                title=post.title if post else None,
                tags=list(post.tags) if post else None,
                published_at=post.published_at if post else None,
                publish_at=effect.publish_at,
            ),
        )
        return RecordPostResult(
            author_id=outcome.author_id or "",
            post_id=effect.post_id,
            counted=outcome.counted,
            post_count=outcome.post_count,
        )

    @activity.defn(name="retract_post")
    def retract_post(self, effect: PostEffect) -> IndexPostResult:
        """The post out of the index at its fence, as a tombstone no older write overtakes."""
        try:
            applied = self.index.retract(effect.post_id, effect.fence)
        except IndexUnavailable as exc:
            raise _index_unavailable(exc) from None
        version = effect.post.version if effect.post else 0
        return IndexPostResult(post_id=effect.post_id, version=version, applied=applied)

    @activity.defn(name="read_post_fence")
    def read_post_fence(self, fence: PostFence) -> PostFence:
        """The newest fence written for the post: a new run of its workflow (a post deleted,
        then published again) continues above it."""
        row = get_post(self.engine, fence.post_id)
        if row is None:
            return PostFence(post_id=fence.post_id)
        return PostFence(
            post_id=fence.post_id,
            fence=int(row["fence"]),
            state=PostState(row["state"]),
            author_id=row["author_id"],
            version=int(row["version"]),
            announced=bool(row["announced"]),
        )
