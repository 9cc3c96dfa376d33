"""The follower graph: who follows whom, read in keyset pages so no audience is read whole.

The ``followers`` table (spool/db/blog.py) is keyed on (author_id, follower_id), so a page
"after this follower" is a range scan of the primary key, as fast on the millionth page as
on the first, and a follower added while pages are read appears once or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spool.db import insert_ignore
from spool.db.blog import authors, followers

# The follower_id column's length (spool/db/blog.py): longer ids are refused at the door.
FOLLOWER_ID_MAX = 200
# Rows per INSERT when importing: multi-row statements, one transaction per chunk.
IMPORT_CHUNK = 5_000


def _page_statement(after: bool) -> Any:
    query = sa.select(followers.c.follower_id).where(
        followers.c.author_id == sa.bindparam("author")
    )
    if after:
        query = query.where(followers.c.follower_id > sa.bindparam("after"))
    return query.order_by(followers.c.follower_id).limit(sa.bindparam("limit"))


# Built once: a fan-out reads hundreds of pages.
_FIRST_PAGE = _page_statement(after=False)
_NEXT_PAGE = _page_statement(after=True)


def followers_page(
    source: Engine | Connection, author_id: str, after: str | None, limit: int
) -> list[str]:
    """Up to ``limit`` follower ids of ``author_id`` in id order, those after ``after`` (all
    from the first when None)."""
    params = {"author": author_id, "after": after, "limit": limit}
    statement = _FIRST_PAGE if after is None else _NEXT_PAGE
    if isinstance(source, Connection):
        return list(source.execute(statement, params).scalars())
    with source.connect() as conn:
        return list(conn.execute(statement, params).scalars())


def iter_follower_pages(
    engine: Engine, author_id: str, after: str | None, limit: int
) -> Iterator[list[str]]:
    """Every page of ``author_id``'s followers after ``after``; each read when asked for."""
    while True:
        page = followers_page(engine, author_id, after, limit)
        if not page:
            return
        yield page
        if len(page) < limit:
            return
        after = page[-1]


def follower_count(engine: Engine, author_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(followers)
            .where(followers.c.author_id == author_id)
        ).scalar_one()


def author_exists(engine: Engine, author_id: str) -> bool:
    """An author is known once a post of theirs was counted or someone follows them."""
    with engine.connect() as conn:
        counted = conn.execute(
            sa.select(authors.c.author_id).where(authors.c.author_id == author_id)
        ).first()
        if counted is not None:
            return True
        return (
            conn.execute(
                sa.select(followers.c.author_id).where(followers.c.author_id == author_id).limit(1)
            ).first()
            is not None
        )


@functools.cache
def _follow_statement(dialect: str) -> Any:
    return insert_ignore(dialect, followers).returning(followers.c.follower_id)


def follow(engine: Engine, author_id: str, follower_id: str) -> bool:
    """Add the edge; True when it is new (a repeat changes nothing)."""
    with engine.begin() as conn:
        row = conn.execute(
            _follow_statement(conn.dialect.name),
            {"author_id": author_id, "follower_id": follower_id},
        ).first()
    return row is not None


def unfollow(engine: Engine, author_id: str, follower_id: str) -> bool:
    """Remove the edge; True when there was one."""
    with engine.begin() as conn:
        removed = conn.execute(
            followers.delete()
            .where(followers.c.author_id == author_id, followers.c.follower_id == follower_id)
            .returning(followers.c.follower_id)
        ).first()
    return removed is not None


def import_follows(engine: Engine, edges: Iterable[tuple[str, str]]) -> int:
    """Add every (author_id, follower_id) edge, ``IMPORT_CHUNK`` rows per transaction;
    the number of edges that were new. Existing edges are skipped, so an import interrupted
    half-way is finished by running it again."""
    edges = iter(edges)
    created = 0
    while chunk := list(islice(edges, IMPORT_CHUNK)):
        with engine.begin() as conn:
            created += len(
                conn.execute(
                    _follow_statement(conn.dialect.name),
                    [{"author_id": a, "follower_id": f} for a, f in chunk],
                ).all()
            )
    return created
