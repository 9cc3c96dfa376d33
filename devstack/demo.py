"""`make demo`: start the embedded stack, run the main jobs on sample input, show the results.

Publishes the sample posts in samples/posts/, processes samples/speech.mp4 (renditions, poster,
Whisper captions), prints what came out and where to look in the Temporal Web UI, then stops.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devstack.proc import StackError
from devstack.stack import REPO, EmbeddedStack
from spool.clients import DirectClient
from spool.config import get_settings
from spool.db import get_engine
from spool.db.blog import author_post_count
from spool.search import open_index
from spool.service.jobs import start_blog
from spool.temporal import connect, exit_process
from starter import load_post, wait_for

SAMPLE_POSTS = sorted((REPO / "samples" / "posts").glob("*.json"))


async def demo_blog(client, settings, stack: EmbeddedStack, console: Console) -> None:
    console.rule("[bold]Blog publishing")
    posts = [load_post(str(p)) for p in SAMPLE_POSTS]
    jobs = [await start_blog(client, settings, post) for post in posts]
    table = Table("job", "state", "steps (index, count, notify)")
    direct = DirectClient(client, settings)
    for job in jobs:
        view = await wait_for(direct, job.job_id, live=False, console=console)
        steps = " ".join(f"{s.name.split('_')[0]}:{s.state}" for s in view.steps)
        table.add_row(job.job_id, view.state, steps)
    console.print(table)
    engine = get_engine(settings)
    for author in sorted({p.author_id for p in posts}):
        console.print(
            f"author [bold]{author}[/bold]: post count "
            f"{author_post_count(engine, author)} (counted once, however often "
            "the demo runs)"
        )
    index = open_index(settings)
    index.refresh()
    console.print(f"search 'whisper captions' → {index.search('whisper captions')}")
    outbox = settings.resolved_notify_outbox
    if outbox.exists():
        console.print(
            f"follower notifications delivered: "
            f"{len(outbox.read_text().splitlines())} (outbox: {outbox})"
        )
    console.print(f"Temporal UI: {stack.job_url(jobs[0].job_id)}")


async def run(stack: EmbeddedStack, console: Console) -> None:
    settings = stack.settings.model_copy(update={"temporal_address": stack.temporal_address})
    client = await connect(settings, wait_seconds=30)
    await demo_blog(client, settings, stack, console)
    try:
        from devstack.demo_video import run_video_demo
    except ImportError:
        console.print("[yellow]video pipeline not installed in this checkout[/yellow]")
    else:
        console.rule("[bold]Video processing")
        await run_video_demo(client, settings, console)
    console.rule("[bold]Where to look")
    console.print(
        f"Temporal Web UI (stopped with the demo; `make up` keeps it running): {stack.ui_url}"
    )
    console.print('Filter runs there with:  SpoolKind="video"  or  SpoolStatus="ready"')
    console.print(f"Data and logs: {Path(settings.data_dir).resolve()}")


def main() -> int:
    console = Console()
    stack = EmbeddedStack(get_settings())
    console.print("starting the embedded stack (Temporal dev server, worker, API) ...")
    try:
        with stack:
            asyncio.run(run(stack, console))
    except StackError as exc:
        console.print(f"[red]make demo: {exc}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    exit_process(main())
