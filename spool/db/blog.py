"""Blog tables and the transactions that make each publishing effect happen once.

A post's state is written in one transaction per write: the author's row is locked first (so
writes for one author are in one order), the post's row is written only when the write's
fence is above the stored one (a repeat, or an older operation arriving late, changes
nothing), and the author's count is then recounted from the posts published now, so it is
exact whatever came before (docs/posts.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spool.db import dialect_insert, insert_ignore, metadata

authors = sa.Table(
    "authors",
    metadata,
    sa.Column("author_id", sa.String(200), primary_key=True),
    sa.Column("post_count", sa.Integer, nullable=False, server_default="0"),
)

# Counting once per post before posts had states; kept for the databases that have it, no
# longer written (the count is recounted from the posts published now: post_state.py).
author_posts = sa.Table(
    "author_posts",
    metadata,
    sa.Column("author_id", sa.String(200), primary_key=True),
    sa.Column("post_id", sa.String(200), primary_key=True),
    sa.Column("counted_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

posts = sa.Table(
    "posts",
    metadata,
    sa.Column("post_id", sa.String(200), primary_key=True),
    sa.Column("author_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("published_at", sa.String(64), nullable=True),
    sa.Column(
        "updated_at",
        sa.DateTime(timezone=True),
        server_default=sa.func.now(),
        onupdate=sa.func.now(),
    ),
    # scheduled / published / unpublished / deleted (spool/models/posts.py); a deleted post's
    # row stays as its tombstone, so its fence still refuses older writes.
    sa.Column("state", sa.String(16), nullable=False, server_default="published"),
    # The newest operation's fence written here (spool/models/posts.py).
    sa.Column("fence", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("publish_at", sa.String(64), nullable=True),
    # Published once: its followers were told then and are never again (docs/posts.md).
    sa.Column("announced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_posts_author_state", "author_id", "state", "post_id"),
)

followers = sa.Table(
    "followers",
    metadata,
    sa.Column("author_id", sa.String(200), primary_key=True),
    sa.Column("follower_id", sa.String(200), primary_key=True),
)


PUBLISHED = "published"
DELETED = "deleted"


@dataclass(frozen=True)
class PostWrite:
    """A post's state at a fence; the metadata fields are None to keep the stored ones."""

    post_id: str
    state: str
    fence: int
    author_id: str | None = None
    version: int | None = None
    title: str | None = None
    tags: list[str] | None = None
    published_at: str | None = None
    publish_at: str | None = None


@dataclass(frozen=True)
class WriteOutcome:
    applied: bool  # False: this fence or a newer one was already written
    counted: bool  # the post became published by this write
    author_id: str | None
    post_count: int


def write_post_state(engine: Engine, write: PostWrite) -> WriteOutcome:
    with engine.begin() as conn:
        stored = _stored(conn, write.post_id)
        author_id = write.author_id or (stored["author_id"] if stored else None)
        if author_id is None:
            # Nothing recorded and nothing to record it under: an operation on a post never
            # published (unpublished before its first publish landed). Nothing to count.
            return WriteOutcome(False, False, None, 0)
        authors_touched: list[str] = sorted(
            {str(author_id), *([str(stored["author_id"])] if stored else [])}
        )
        for author in authors_touched:
            _lock_author(conn, author)
        stored = _stored(conn, write.post_id, lock=True)
        if stored is not None and stored["fence"] >= write.fence:
            return WriteOutcome(False, False, author_id, _count(conn, author_id))
        _store(conn, write, author_id, stored)
        counts = {author: _recount(conn, author) for author in authors_touched}
    was_published = stored is not None and stored["state"] == PUBLISHED
    return WriteOutcome(
        True, write.state == PUBLISHED and not was_published, author_id, counts[author_id]
    )


def _stored(conn: Connection, post_id: str, *, lock: bool = False) -> dict | None:
    query = sa.select(posts.c.author_id, posts.c.state, posts.c.fence).where(
        posts.c.post_id == post_id
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def _lock_author(conn: Connection, author_id: str) -> None:
    """The author's row exists and is this transaction's until it ends. SQLite has one writer
    at a time already: the insert takes its write lock."""
    conn.execute(insert_ignore(conn, authors).values(author_id=author_id, post_count=0))
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.select(authors.c.author_id).where(authors.c.author_id == author_id).with_for_update()
        )


def _store(conn: Connection, write: PostWrite, author_id: str, stored: dict | None) -> None:
    values: dict[str, Any] = {
        "state": write.state,
        "fence": write.fence,
        "author_id": author_id,
        "publish_at": write.publish_at,
        "updated_at": sa.func.now(),
    }
    if write.state == PUBLISHED:
        values["announced"] = True  # and stays so, through an unpublish or a delete
    for name in ("version", "title", "tags", "published_at"):
        if getattr(write, name) is not None:
            values[name] = getattr(write, name)
    if stored is None:
        # A first row needs every column: a post never recorded gets blank metadata until
        # its publish writes it (a schedule or an unpublish that arrives first).
        values = {"version": 0, "title": "", "tags": [], **values, "post_id": write.post_id}
        conn.execute(dialect_insert(conn.dialect.name)(posts).values(**values))
        return
    conn.execute(posts.update().where(posts.c.post_id == write.post_id).values(**values))


def _recount(conn: Connection, author_id: str) -> int:
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(posts)
        .where(posts.c.author_id == author_id, posts.c.state == PUBLISHED)
    ).scalar_one()
    conn.execute(authors.update().where(authors.c.author_id == author_id).values(post_count=count))
    return int(count)


def _count(conn: Connection, author_id: str) -> int:
    return int(
        conn.execute(
            sa.select(authors.c.post_count).where(authors.c.author_id == author_id)
        ).scalar_one_or_none()
        or 0
    )


def list_posts(
    engine: Engine, *, author_id: str | None, state: str | None, after: str | None, limit: int
) -> list[dict]:
    """Posts (never the deleted ones) in post id order after ``after``: one keyset page."""
    query = sa.select(posts).where(posts.c.state != DELETED).order_by(posts.c.post_id)
    if author_id is not None:
        query = query.where(posts.c.author_id == author_id)
    if state is not None:
        query = query.where(posts.c.state == state)
    if after is not None:
        query = query.where(posts.c.post_id > after)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query.limit(limit)).mappings()]


@dataclass
class CountOutcome:
    counted: bool
    post_count: int


def record_post_for_author(
    engine: Engine,
    *,
    author_id: str,
    post_id: str,
    version: int,
    title: str,
    tags: list[str],
    published_at: str | None,
    fence: int | None = None,
) -> CountOutcome:
    """Record the post published at its fence (its version, for a publish started on its
    own), in one transaction with its author's count (spool/db/post_state.py): a retry, an
    edit or an older write arriving late never counts twice, and an unpublish or delete
    written at a newer fence is never undone."""
    outcome = write_post_state(
        engine,
        PostWrite(
            post_id=post_id,
            state=PUBLISHED,
            fence=version if fence is None else fence,
            author_id=author_id,
            version=version,
            title=title,
            tags=tags,
            published_at=published_at,
        ),
    )
    return CountOutcome(counted=outcome.counted, post_count=outcome.post_count)


def author_post_count(engine: Engine, author_id: str) -> int:
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(authors.c.post_count).where(authors.c.author_id == author_id)
        ).scalar_one_or_none()
    return count or 0


def get_post(engine: Engine, post_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(posts).where(posts.c.post_id == post_id)).mappings().first()
    return dict(row) if row else None


def followers_of(engine: Engine, author_id: str) -> list[str]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(followers.c.follower_id)
                .where(followers.c.author_id == author_id)
                .order_by(followers.c.follower_id)
            )
            .scalars()
            .all()
        )
    return list(rows)


def add_followers(engine: Engine, author_id: str, follower_ids: list[str]) -> None:
    if not follower_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            insert_ignore(conn, followers),
            [{"author_id": author_id, "follower_id": f} for f in follower_ids],
        )
