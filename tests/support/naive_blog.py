"""What Spool does NOT do, kept to show why: one activity doing all three publishing steps.

When indexing fails, Temporal retries the whole activity, so the count and the notifications,
which already happened, happen again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from spool.models import Post


@dataclass
class NaiveResult:
    post_id: str


class NaiveActivities:
    def __init__(self, engine, index, outbox) -> None:
        self.engine, self.index, self.outbox = engine, index, outbox

    @activity.defn(name="naive_publish")
    def naive_publish(self, post: Post) -> NaiveResult:
        from spool.db.blog import authors
        from spool.search import IndexUnavailable, PostDocument

        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO authors (author_id, post_count) VALUES (:a, 0) "
                    "ON CONFLICT (author_id) DO NOTHING"
                ),
                {"a": post.author_id},
            )
            conn.execute(
                authors.update()
                .where(authors.c.author_id == post.author_id)
                .values(post_count=authors.c.post_count + 1)
            )
        for follower in post.followers or []:
            self.outbox.append((post.post_id, follower))
        try:
            self.index.upsert(
                PostDocument(
                    post_id=post.post_id,
                    version=post.version,
                    author_id=post.author_id,
                    title=post.title,
                    body=post.body,
                    tags=post.tags,
                )
            )
        except IndexUnavailable as exc:
            raise ApplicationError(str(exc)) from None
        return NaiveResult(post_id=post.post_id)


@workflow.defn(name="NaivePublishWorkflow")
class NaivePublishWorkflow:
    @workflow.run
    async def run(self, post: Post) -> NaiveResult:
        return await workflow.execute_activity(
            "naive_publish",
            post,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.0
            ),
            result_type=NaiveResult,
        )
