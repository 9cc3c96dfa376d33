"""Posts for the API: publish, read (record, index, or the job still publishing it), a
version's publishing job, search, authors' counts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client

import spool.service.jobs as jobs
from spool.config import Settings
from spool.db.blog import DELETED, author_post_count, get_post, list_posts
from spool.models import (
    InvalidPostError,
    JobState,
    Post,
    PostOpKind,
    blog_workflow_id,
    check_publish_at,
    validate_post,
)
from spool.search import PostIndex
from spool.service.post_ops import (
    apply_op,
    deleted_in_history,
    entity_running,
    new_op,
    require_known,
)
from spool.service.views import (
    AuthorView,
    JobView,
    PostAccepted,
    PostJobView,
    PostList,
    PostOpAccepted,
    PostSummary,
    PostView,
    SearchHit,
    SearchResults,
)

# Reading a post must answer even when Temporal is slow: the job is then said to be running.
JOB_STATE_SECONDS = 4.0
WAITING_FOR_POST = "waiting for the post's workflow to start this job"


def post_url(post_id: str, version: int | None = None) -> str:
    return f"/v1/posts/{post_id}" + (f"?version={version}" if version is not None else "")


async def publishing_job(client: Client, post_id: str, version: int) -> PostJobView | None:
    """The job publishing this version of the post: its state and steps, with the server's
    retry state merged in; None when Temporal knows no such job."""
    job_id = blog_workflow_id(post_id, version)
    live = await jobs.live_status(client, job_id, JOB_STATE_SECONDS)
    if live is None and await accepted_not_deleted(client, post_id):
        # Accepted by the post's workflow, which has not started this job yet.
        live = JobView(job_id=job_id, state=JobState.PROCESSING, unavailable=WAITING_FOR_POST)
    if live is None:
        return None
    return PostJobView(
        post_id=post_id,
        version=version,
        job_id=job_id,
        state=live.state,
        steps=live.steps,
        error=live.error,
        status_unavailable=live.unavailable,
        post_url=post_url(post_id, version),
    )


def encode_cursor(post_id: str) -> str:
    return post_id.encode().hex()


def decode_cursor(cursor: str) -> str:
    """The post id a cursor continues after (any even run of hex digits is one: the page
    after it); ValueError for what is not hex."""
    try:
        return bytes.fromhex(cursor).decode("utf-8", "replace")
    except ValueError:
        raise ValueError("cursor: not a cursor this API gave") from None


async def accepted_not_deleted(client: Client, post_id: str) -> bool:
    """Whether the post's running workflow holds operations not yet applied, the latest not
    a delete (from the moment a delete is accepted the post is not found)."""
    if not await entity_running(client, post_id):
        return False
    return not await deleted_in_history(client, post_id)


class IndexUnavailable(Exception):
    """The post index did not answer a search."""


class PostService:
    def __init__(
        self, client: Client, settings: Settings, engine: Engine, index: PostIndex
    ) -> None:
        self.client = client
        self.settings = settings
        self.engine = engine
        self.index = index

    async def publish(self, post: Post, publish_at: str | None = None) -> PostAccepted:
        """Publish now, or at ``publish_at``, through the post's workflow (raises
        InvalidPostError naming the field, PostRefused); a repeat of the same post id and
        version returns the same job."""
        validate_post(
            post,
            self.settings.max_post_body_chars,
            self.settings.max_post_title_chars,
            max_followers=self.settings.max_post_followers,
        )
        try:
            check_publish_at(publish_at, datetime.now(UTC), future=False)
        except ValueError as exc:
            raise InvalidPostError("publish_at", str(exc).removeprefix("publish_at: ")) from None
        op = new_op(PostOpKind.PUBLISH, post.post_id, post=post, publish_at=publish_at)
        applied = await apply_op(self.client, self.settings, self.engine, op)
        result = applied.result
        return PostAccepted(
            job_id=applied.job_id,
            post_id=post.post_id,
            version=post.version,
            status_url=post_url(post.post_id, post.version),
            state=result.state if result else None,
            publish_at=result.publish_at if result else None,
        )

    async def operate(
        self, kind: PostOpKind, post_id: str, publish_at: str | None = None
    ) -> PostOpAccepted:
        """Unpublish, delete, reschedule or cancel a schedule (raises InvalidPostError for a
        time refused at the door, PostRefused for what the post's workflow refuses)."""
        if kind == PostOpKind.SCHEDULE:
            # An unknown post is named first: its time is then beside the point.
            await require_known(self.client, self.engine, post_id)
            try:
                check_publish_at(publish_at, datetime.now(UTC), future=True)
            except ValueError as exc:
                raise InvalidPostError(
                    "publish_at", str(exc).removeprefix("publish_at: ")
                ) from None
        op = new_op(kind, post_id, publish_at=publish_at)
        applied = await apply_op(self.client, self.settings, self.engine, op)
        result = applied.result
        return PostOpAccepted(
            job_id=applied.job_id,
            post_id=post_id,
            operation=kind,
            state=result.state if result else None,
            publish_at=result.publish_at if result else None,
            absorbed=result.absorbed if result else False,
            status_url=post_url(post_id),
        )

    async def list(
        self, *, author_id: str | None, state: str | None, cursor: str | None, limit: int
    ) -> PostList:
        """One keyset page of posts (deleted ones never), in post id order."""
        after = decode_cursor(cursor) if cursor else None
        rows = await asyncio.to_thread(
            list_posts, self.engine, author_id=author_id, state=state, after=after, limit=limit + 1
        )
        page = [
            PostSummary(
                post_id=row["post_id"],
                author_id=row["author_id"],
                state=row["state"],
                version=row["version"],
                title=row["title"],
                publish_at=row["publish_at"],
                url=post_url(row["post_id"]),
            )
            for row in rows[:limit]
        ]
        more = len(rows) > limit
        return PostList(posts=page, next_cursor=encode_cursor(page[-1].post_id) if more else None)

    async def view(self, post_id: str, version: int | None = None) -> PostView | None:
        """The post as recorded and indexed; with ``version``, a version not recorded yet is
        answered by its job's state. None when nothing knows it."""
        found = await self._recorded(post_id)
        if version is None or (found is not None and (found.version or 0) >= version):
            return found
        state = await self._job_state(blog_workflow_id(post_id, version))
        if state is None and found is None and await accepted_not_deleted(self.client, post_id):
            state = JobState.PROCESSING  # accepted, its publishing job not started yet
        if state is None:
            return found
        if found is None:
            return PostView(
                post_id=post_id,
                indexed=False,
                version=version,
                state=state,
                job_id=blog_workflow_id(post_id, version),
            )
        return found.model_copy(update={"state": state})

    async def job(self, post_id: str, version: int) -> PostJobView | None:
        """The job publishing this version; None when Temporal knows no such job."""
        return await publishing_job(self.client, post_id, version)

    async def _recorded(self, post_id: str) -> PostView | None:
        row = await asyncio.to_thread(get_post, self.engine, post_id)
        if row is not None and row["state"] == DELETED:
            return None  # the index holds a tombstone at most
        try:
            doc = await asyncio.to_thread(self.index.get, post_id)
        except Exception:  # noqa: BLE001 - the record alone is still an answer
            doc = None
        if row is None and doc is None:
            return None
        out: dict[str, Any] = {"post_id": post_id, "indexed": doc is not None}
        if row is not None:
            out.update(
                {
                    k: v
                    for k, v in row.items()
                    if k in ("author_id", "version", "title", "tags", "published_at", "state")
                }
            )
            out["publish_at"] = row["publish_at"]
        if doc is not None:
            out.update(
                {
                    "author_id": doc.author_id,
                    "title": doc.title,
                    "body": doc.body,
                    "tags": doc.tags,
                    "published_at": doc.published_at,
                }
            )
            out["version"] = max(int(out.get("version") or 0), doc.version)
        out["job_id"] = blog_workflow_id(post_id, int(out.get("version") or 1))
        for key, value in list(out.items()):
            if hasattr(value, "isoformat"):
                out[key] = value.isoformat()
        return PostView(**out)

    async def _job_state(self, job_id: str) -> JobState | None:
        try:
            job = await asyncio.wait_for(
                jobs.status(self.client, job_id, wait_for_worker=False), JOB_STATE_SECONDS
            )
        except jobs.JobNotFound:
            return None
        except TimeoutError:
            return JobState.PROCESSING
        return JobState(job.state)

    async def search(self, query: str, limit: int) -> SearchResults:
        """Posts matching any word of the query, best first; raises IndexUnavailable."""

        def run() -> list[SearchHit]:
            hits = []
            for post_id in self.index.search(query, limit):
                doc = self.index.get(post_id)
                if doc is not None:
                    hits.append(
                        SearchHit(
                            post_id=doc.post_id,
                            title=doc.title,
                            author_id=doc.author_id,
                            version=doc.version,
                            tags=doc.tags,
                            url=post_url(doc.post_id),
                        )
                    )
            return hits

        try:
            hits = await asyncio.to_thread(run)
        except Exception as exc:  # noqa: BLE001 - index down: say so
            raise IndexUnavailable(type(exc).__name__) from None
        return SearchResults(query=query, results=hits)

    async def author(self, author_id: str) -> AuthorView:
        count = await asyncio.to_thread(author_post_count, self.engine, author_id)
        return AuthorView(author_id=author_id, post_count=count)
