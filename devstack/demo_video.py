"""The video half of `make demo`: ingest samples/speech.mp4, run its job, show what came out."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from spool.config import Settings
from spool.ingest import ingest_video, start_video_job
from spool.storage import open_storage

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "speech.mp4"


async def run_video_demo(client: Client, settings: Settings, console: Console) -> None:
    """Needs workers polling the pipeline, media and captions queues (the demo stack runs them)."""
    inp = ingest_video(settings, SAMPLE, owner_id="demo-owner")
    handle = await start_video_job(client, settings, inp)
    console.print(f"[bold]Video job[/bold] {handle.id}: processing {SAMPLE.name} ...")
    started = time.monotonic()
    status = await handle.result()
    took = time.monotonic() - started
    console.print(
        f"Video job {handle.id} ended [bold]{status.state}[/bold] in {took:.1f} s"
        + (f" ({status.error})" if status.error else "")
    )
    table = Table("rendition", "size", "bytes", "bitrate", "took")
    for r in status.renditions:
        table.add_row(
            r.name,
            f"{r.width}x{r.height}",
            f"{r.size_bytes:,}",
            f"{r.bitrate_kbps} kbit/s",
            f"{r.seconds_taken:.1f} s",
        )
    console.print(table)
    if status.poster:
        console.print(f"poster: {status.poster.key}")
    console.print(f"captions: {status.captions_state}")
    if status.captions and status.captions.vtt_key:
        storage = open_storage(settings)
        vtt = storage.read_bytes(status.captions.vtt_key).decode("utf-8")
        console.print(f"caption excerpt: [italic]{status.captions.excerpt[:160]}[/italic]")
        console.print("\n".join(vtt.splitlines()[:6]), markup=False)
    console.print(f"job id: {handle.id}")
