"""What each operation on a post does from each state, or why it is refused: the one table
the workflow's validator and handler share (docs/posts.md, states). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spool.models import (
        INVALID_POST,
        InvalidPostError,
        Post,
        PostEntityState,
        PostOp,
        PostOpKind,
        PostState,
        check_publish_at,
        validate_post,
    )

# ApplicationError types of a refusal; the API answers 404, 409 and 422 for them.
POST_NOT_FOUND = "PostNotFound"
POST_CONFLICT = "PostConflict"
GONE = (PostState.NONE, PostState.DELETED)


class Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Decision:
    state: PostState
    post: Post | None = None
    publish_at: str | None = None
    absorbed: bool = False


def check_op(s: PostEntityState | None, op: PostOp, now: datetime) -> Decision:
    """The operation's outcome from state ``s`` (None: not known yet, so only what the
    operation says of itself is checked); raises Refused."""
    if s is not None and s.post_id and op.post_id != s.post_id:
        raise Refused(INVALID_POST, f"post_id: this is post {s.post_id!r}, not {op.post_id!r}")
    rule = {
        PostOpKind.PUBLISH: _publish,
        PostOpKind.UNPUBLISH: _unpublish,
        PostOpKind.DELETE: _delete,
        PostOpKind.SCHEDULE: _schedule,
        PostOpKind.CANCEL_SCHEDULE: _cancel_schedule,
    }.get(op.kind)
    if rule is None:
        raise Refused(INVALID_POST, f"kind: {op.kind!r} is not an operation on a post")
    return rule(s, op, now)


def scheduled_time(value: str | None, now: datetime, *, future: bool) -> str | None:
    try:
        return check_publish_at(value, now, future=future)
    except ValueError as exc:
        raise Refused(INVALID_POST, str(exc)) from None


def _publish(s: PostEntityState | None, op: PostOp, now: datetime) -> Decision:
    post = op.post
    if post is None:
        raise Refused(INVALID_POST, "post: a publish carries the post")
    try:
        validate_post(post)
    except InvalidPostError as exc:
        raise Refused(INVALID_POST, str(exc)) from None
    if post.post_id != op.post_id:
        raise Refused(INVALID_POST, f"post_id: {post.post_id!r} is not {op.post_id!r}")
    publish_at = scheduled_time(op.publish_at, now, future=False)
    state = PostState.SCHEDULED if publish_at else PostState.PUBLISHED
    if s is None:
        return Decision(state, post, publish_at)
    if s.state not in GONE and post.version < s.version:
        raise Refused(
            POST_CONFLICT,
            f"version: {post.version} is older than the post's version {s.version}",
        )
    same = s.state == state and post.version == s.version and s.publish_at == publish_at
    return Decision(state, post, publish_at, absorbed=same)


def _known(s: PostEntityState, op: PostOp) -> None:
    if s.state == PostState.NONE:
        raise Refused(POST_NOT_FOUND, f"no post {op.post_id!r}")
    if s.state == PostState.DELETED:
        raise Refused(POST_NOT_FOUND, f"post {op.post_id!r} was deleted")


def _unpublish(s: PostEntityState | None, op: PostOp, now: datetime) -> Decision:
    if s is None:
        return Decision(PostState.UNPUBLISHED)
    _known(s, op)
    return Decision(PostState.UNPUBLISHED, absorbed=s.state == PostState.UNPUBLISHED)


def _delete(s: PostEntityState | None, op: PostOp, now: datetime) -> Decision:
    if s is None:
        return Decision(PostState.DELETED)
    if s.state == PostState.DELETED:
        return Decision(PostState.DELETED, absorbed=True)
    _known(s, op)
    return Decision(PostState.DELETED)


def _schedule(s: PostEntityState | None, op: PostOp, now: datetime) -> Decision:
    publish_at = scheduled_time(op.publish_at, now, future=True)
    if s is None:
        return Decision(PostState.SCHEDULED, publish_at=publish_at)
    _known(s, op)
    if s.state == PostState.PUBLISHED:
        raise Refused(POST_CONFLICT, f"too late: post {op.post_id!r} is already published")
    if s.state != PostState.SCHEDULED:
        raise Refused(POST_CONFLICT, f"post {op.post_id!r} is not scheduled (it is {s.state})")
    return Decision(PostState.SCHEDULED, publish_at=publish_at, absorbed=s.publish_at == publish_at)


def _cancel_schedule(s: PostEntityState | None, op: PostOp, now: datetime) -> Decision:
    if s is None:
        return Decision(PostState.UNPUBLISHED)
    _known(s, op)
    if s.state == PostState.PUBLISHED:
        raise Refused(
            POST_CONFLICT, f"too late: post {op.post_id!r} is published; nothing is scheduled"
        )
    return Decision(PostState.UNPUBLISHED, absorbed=s.state == PostState.UNPUBLISHED)
