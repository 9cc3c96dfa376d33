"""The ceilings for bench/blog.py, each a worker set up exactly as worker.py.

- bare (default): a workflow with three no-op activities run concurrently. Same shape as
  BlogPublishWorkflow (three activities started together, sync activities on a thread
  pool), none of its work and none of its Temporal features: what Spool costs in all.
- ``--spool-workflow``: BlogPublishWorkflow itself (its payloads, policies, search
  attributes, status) with three no-op activities under its steps' names: what the steps'
  own database, index and notification writes cost.

    python -m bench.trivial [--spool-workflow]   (SPOOL_* environment like worker.py)
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from spool.models import IndexPostResult, NotifyFollowersResult, Post, RecordPostResult


@activity.defn(name="noop")
def noop(step: str) -> str:
    return step


@workflow.defn(name="TrivialThreeStepWorkflow")
class TrivialThreeStepWorkflow:
    @workflow.run
    async def run(self, name: str) -> list[str]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(
                        noop, step, start_to_close_timeout=timedelta(seconds=30)
                    )
                    for step in ("a", "b", "c")
                )
            )
        )


# Registered under the names BlogPublishWorkflow's steps call; they take and return what the
# real ones do, and do nothing.
@activity.defn(name="index_post")
def index_post(post: Post) -> IndexPostResult:
    return IndexPostResult(post_id=post.post_id, version=post.version, applied=True)


@activity.defn(name="record_post_for_author")
def record_post_for_author(post: Post) -> RecordPostResult:
    return RecordPostResult(
        author_id=post.author_id, post_id=post.post_id, counted=True, post_count=1
    )


@activity.defn(name="notify_followers")
def notify_followers(post: Post) -> NotifyFollowersResult:
    return NotifyFollowersResult(
        event_id=f"post-published:{post.post_id}",
        recipients=len(post.followers or ()),
        newly_created=0,
    )


async def main() -> None:
    from spool import observability
    from spool.config import get_settings
    from spool.temporal import connect
    from worker import QueueWork, build_workers, default_concurrency

    settings = get_settings()
    # Everything as worker.py sets it up, so only the workflow and activities differ: its
    # telemetry and client, its Worker options, its concurrency and thread pool.
    observability.start_worker_telemetry(settings)
    client = await connect(settings, wait_seconds=30)
    if "--spool-workflow" in sys.argv[1:]:
        from workflows.blog import BlogPublishWorkflow

        workflows, activities = (
            [BlogPublishWorkflow],
            [index_post, record_post_for_author, notify_followers],
        )
    else:
        workflows, activities = [TrivialThreeStepWorkflow], [noop]
    plan = [
        QueueWork(
            name=settings.queue_pipeline,
            workflows=workflows,
            activities=activities,
            max_concurrent_activities=default_concurrency(settings, "pipeline"),
        )
    ]
    threads = sum(work.max_concurrent_activities for work in plan) + 4
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="activity") as pool:
        [worker] = build_workers(client, plan, pool, grace_seconds=30.0)
        print("worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
