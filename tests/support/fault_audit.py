"""The audit every blog fault test ends with: every job in a final state; each author's post
count exact; one notification per (event, recipient) in the ledger and in the outbox;
Elasticsearch documents at the post's version. And the posts it is run on."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa

from activities.blog import post_published_event_id
from spool.config import Settings
from spool.db import get_engine
from spool.db.blog import authors
from spool.db.notifications import delivery_key, notifications
from spool.models import Post
from spool.search import open_index


def make_posts(tag: str, authors_n: int, per_author: int, followers_n: int = 3) -> list[Post]:
    """per_author posts by each of authors_n authors, each author with their own followers."""
    run = uuid.uuid4().hex[:6]
    return [
        Post(
            post_id=f"{tag}-{run}-a{a}-p{p}",
            author_id=f"{tag}-{run}-a{a}",
            title=f"Fault matrix post {p} by author {a}",
            body="Counted once, announced once, indexed at its version.",
            version=1,
            followers=[f"{tag}-{run}-a{a}-f{f}" for f in range(followers_n)],
        )
        for p in range(per_author)
        for a in range(authors_n)
    ]


def counted_posts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(authors.c.author_id, authors.c.post_count)).all())


def ledger_rows(engine: sa.Engine, event_ids: Iterable[str]) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(notifications).where(notifications.c.event_id.in_(list(event_ids)))
            ).mappings()
        ]


def outbox_keys(settings: Settings) -> Counter:
    path = settings.resolved_notify_outbox
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["key"] for line in lines)


def assert_blog_effects(settings: Settings, posts: list[Post], results: dict[str, dict]) -> None:
    """Every job ready; counts exact; one ledger row and one outbox delivery per (post,
    follower): none of these faults crashes a worker between sending and marking, the one
    moment a notification may go out twice (under the same key, for receivers to drop)."""
    not_ready = {j: r["state"] for j, r in results.items() if r["state"] != "ready"}
    assert not not_ready, f"jobs not ready: {not_ready}"
    firsts = [p for p in posts if p.version == 1]
    engine = get_engine(settings)
    expected_counts = Counter(p.author_id for p in firsts)
    assert counted_posts(engine) == dict(expected_counts)
    expected = {(post_published_event_id(p.post_id), f) for p in firsts for f in p.followers}
    rows = ledger_rows(engine, {e for e, _ in expected})
    assert {(r["event_id"], r["recipient"]) for r in rows} == expected
    undelivered = [r for r in rows if r["delivered_at"] is None]
    assert not undelivered, f"{len(undelivered)} notifications never delivered"
    sent = outbox_keys(settings)
    assert set(sent) == {delivery_key(e, f) for e, f in expected}
    twice = {key: n for key, n in sent.items() if n > 1}
    assert not twice, f"{len(twice)} notifications delivered more than once: {twice}"


def assert_indexed_at_versions(settings: Settings, posts: list[Post]) -> None:
    newest = {}
    for p in posts:
        newest[p.post_id] = max(newest.get(p.post_id, 0), p.version)
    index = open_index(settings)
    try:
        index.refresh()
        found = {pid: (doc.version if (doc := index.get(pid)) else None) for pid in newest}
    finally:
        index.close()
    assert found == newest
