"""Record completed blog workflow histories into tests/histories/ for the replay tests.

    .venv/bin/python -m tests.record_histories

Run it when a workflow change is *meant* to be incompatible (and version the workflow), or to
add a new scenario; never to make a failing replay test pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from temporalio.client import WorkflowFailureError

from activities.blog import BlogActivities
from devstack.proc import free_port
from devstack.temporal import DevServer
from spool.config import Settings
from spool.jobs import start_blog_job
from spool.models import BlogPublishInput, Post
from spool.temporal import connect
from tests.conftest import running_worker
from workflows.blog import BlogPublishWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"


async def record_blog(client, settings: Settings) -> None:
    queue = settings.queue_pipeline
    acts = BlogActivities(settings)
    post = Post(post_id="replay-1", author_id="author-replay", title="Replay me",
                body="A post recorded for the replay tests.", tags=["replay"],
                followers=["f1", "f2"])
    async with running_worker(client, queue, workflows=[BlogPublishWorkflow],
                              activities=acts.activities()):
        for name, p in (("blog-publish", post),
                        ("blog-edit", Post(**{**post.__dict__, "version": 2,
                                              "title": "Replay me, edited"}))):
            job = await start_blog_job(client, settings, p)
            handle = client.get_workflow_handle(job.job_id)
            await handle.result()
            (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json())
        # Started without Spool's validation at the door, as the temporal CLI would.
        bad = BlogPublishInput(post=Post(post_id="replay-bad", author_id="a", title="t",
                                         body=" "))
        handle = await client.start_workflow(BlogPublishWorkflow.run, bad,
                                             id="post-replay-bad-v1", task_queue=queue)
        with contextlib.suppress(WorkflowFailureError):  # the failure is the scenario
            await handle.result()
        (HISTORIES / "blog-invalid.json").write_text((await handle.fetch_history()).to_json())


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(port=free_port(), ui_port=None, db_filename=None,
                           log_path=Path(tmp) / "temporal.log")
        with server:
            settings = Settings(temporal_address=server.address, data_dir=Path(tmp) / "data",
                                queue_pipeline="record-histories")
            client = await connect(settings, wait_seconds=30)
            await record_blog(client, settings)
    print(f"wrote histories to {HISTORIES}")


if __name__ == "__main__":
    asyncio.run(main())
