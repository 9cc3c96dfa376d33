"""A post's state in the database, fenced, with its author's count exact: on SQLite and on
PostgreSQL (the `engine` fixture), concurrently too."""

from __future__ import annotations

import threading
import uuid

import pytest

from spool.db.blog import PostWrite, author_post_count, get_post, write_post_state
from spool.db.blog import record_post_for_author as record
from spool.models import entity_fence

pytestmark = pytest.mark.unit


def ids() -> tuple[str, str]:
    uid = uuid.uuid4().hex[:8]
    return f"author-{uid}", f"post-{uid}"


def publish(engine, author: str, post: str, generation: int, version: int = 1):
    return record(
        engine,
        author_id=author,
        post_id=post,
        version=version,
        title=f"v{version}",
        tags=[],
        published_at=None,
        fence=entity_fence(generation),
    )


def set_state(engine, post: str, state: str, generation: int):
    return write_post_state(
        engine, PostWrite(post_id=post, state=state, fence=entity_fence(generation))
    )


def test_unpublish_uncounts_and_an_older_write_arriving_late_changes_nothing(engine):
    author, post = ids()
    assert publish(engine, author, post, 1).counted
    assert author_post_count(engine, author) == 1
    down = set_state(engine, post, "unpublished", 2)
    assert down.applied and down.post_count == 0
    # The publish's retry (its fence is older) and a publish started on its own (fenced by
    # its version, below every fence of the post's workflow) both change nothing.
    assert not publish(engine, author, post, 1).counted
    late = record(
        engine, author_id=author, post_id=post, version=7, title="x", tags=[], published_at=None
    )
    assert not late.counted
    assert not set_state(engine, post, "unpublished", 2).applied  # a repeat
    assert author_post_count(engine, author) == 0
    assert get_post(engine, post)["state"] == "unpublished"
    assert publish(engine, author, post, 3, version=2).counted  # republished
    assert author_post_count(engine, author) == 1
    assert set_state(engine, post, "deleted", 4).post_count == 0
    assert get_post(engine, post)["state"] == "deleted"


def test_the_count_is_the_number_of_posts_published_now(engine):
    author = f"author-{uuid.uuid4().hex[:8]}"
    posts = [f"{author}-p{n}" for n in range(4)]
    for post in posts:
        publish(engine, author, post, 1)
    set_state(engine, posts[0], "unpublished", 2)
    set_state(engine, posts[1], "deleted", 2)
    set_state(engine, posts[2], "scheduled", 2)
    assert author_post_count(engine, author) == 1


def test_a_state_written_before_its_publish_keeps_the_post_out(engine):
    """An unpublish landing before the publish it follows (its effects run side by side)."""
    author, post = ids()
    early = write_post_state(
        engine,
        PostWrite(post_id=post, state="unpublished", fence=entity_fence(2), author_id=author),
    )
    assert early.applied and early.post_count == 0
    assert not publish(engine, author, post, 1).counted
    assert author_post_count(engine, author) == 0


def test_concurrent_writes_for_one_author_leave_the_count_exact(engine):
    author = f"author-{uuid.uuid4().hex[:8]}"
    posts = [f"{author}-p{n}" for n in range(8)]
    errors: list[BaseException] = []

    def life(post: str, n: int) -> None:
        try:
            publish(engine, author, post, 1)
            if n % 2:
                set_state(engine, post, "unpublished", 2)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=life, args=(p, n)) for n, p in enumerate(posts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # SQLite may answer "locked" to a writer that waited too long: the activity retries it.
    assert all("locked" in str(e) for e in errors), errors
    for n, post in enumerate(posts):
        publish(engine, author, post, 1)
        if n % 2:
            set_state(engine, post, "unpublished", 2)
    assert author_post_count(engine, author) == 4
