"""Blog tables and the transactions that make each publishing effect happen once."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spool.db import dialect_insert, insert_ignore, metadata

authors = sa.Table(
    "authors",
    metadata,
    sa.Column("author_id", sa.String(200), primary_key=True),
    sa.Column("post_count", sa.Integer, nullable=False, server_default="0"),
)

# The key that makes counting once: a post is counted for its author when this row is new.
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
)

followers = sa.Table(
    "followers",
    metadata,
    sa.Column("author_id", sa.String(200), primary_key=True),
    sa.Column("follower_id", sa.String(200), primary_key=True),
)


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
) -> CountOutcome:
    """In one transaction: remember the post's latest version and count it for its author once.

    The (author_id, post_id) row is inserted under its primary key; the count is incremented
    only when that insert created the row, so a retry after a commit, or an edit, never counts
    twice. Three statements on the usual path: each is a round trip that every publish pays.
    """
    with engine.begin() as conn:
        # RETURNING says whether this statement created the row; rowcount for ON CONFLICT DO
        # NOTHING differs between drivers.
        created = (
            conn.execute(
                _counting_statements(conn.dialect.name).claim_post,
                {"author_id": author_id, "post_id": post_id},
            ).first()
            is not None
        )
        count = _count_one_more(conn, author_id) if created else _current_count(conn, author_id)
        _store_post_version(
            conn,
            post_id=post_id,
            author_id=author_id,
            version=version,
            title=title,
            tags=tags,
            published_at=published_at,
        )
    return CountOutcome(counted=created, post_count=count)


def _count_one_more(conn, author_id: str) -> int:
    """Add one to the author's count, creating the author at 1; the count after it."""
    return conn.execute(
        _counting_statements(conn.dialect.name).count_one_more,
        {"author_id": author_id, "post_count": 1},
    ).scalar_one()


def _store_post_version(
    conn,
    *,
    post_id: str,
    author_id: str,
    version: int,
    title: str,
    tags: list[str],
    published_at: str | None,
) -> None:
    """Keep the newest version's metadata; an older version arriving late changes nothing."""
    conn.execute(
        _counting_statements(conn.dialect.name).store_version,
        {
            "post_id": post_id,
            "author_id": author_id,
            "version": version,
            "title": title,
            "tags": tags,
            "published_at": published_at,
        },
    )


@dataclass(frozen=True)
class _CountingStatements:
    claim_post: Any  # the (author_id, post_id) row, RETURNING it only when new
    count_one_more: Any  # the author's count + 1 (the author made at 1), RETURNING the count
    store_version: Any  # the post's metadata, unless a newer version is stored already


@functools.cache
def _counting_statements(dialect: str) -> _CountingStatements:
    """The statements of counting a post, built once per dialect with their values bound at
    execution: building SQLAlchemy expressions cost more CPU than running them, every
    publish."""
    insert = dialect_insert(dialect)
    claim = insert(author_posts).on_conflict_do_nothing().returning(author_posts.c.post_id)
    count = (
        insert(authors)
        .on_conflict_do_update(
            index_elements=[authors.c.author_id], set_={"post_count": authors.c.post_count + 1}
        )
        .returning(authors.c.post_count)
    )
    store = insert(posts)
    newer: dict[str, sa.ColumnElement[Any]] = {
        name: store.excluded[name]
        for name in ("author_id", "version", "title", "tags", "published_at")
    }
    # ON CONFLICT DO UPDATE does not apply the column's onupdate: say it.
    newer["updated_at"] = sa.func.now()
    store = store.on_conflict_do_update(
        index_elements=[posts.c.post_id], set_=newer, where=posts.c.version < store.excluded.version
    )
    return _CountingStatements(claim_post=claim, count_one_more=count, store_version=store)


def _current_count(conn, author_id: str) -> int:
    """A post already counted: the author's count as it stands (the author row is made when
    missing, as it would have been by the first count)."""
    conn.execute(insert_ignore(conn, authors).values(author_id=author_id, post_count=0))
    return conn.execute(
        sa.select(authors.c.post_count).where(authors.c.author_id == author_id)
    ).scalar_one()


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
