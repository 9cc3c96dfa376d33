"""Spool's command-line client: hand work to Temporal, get a job id back at once.

    python starter.py blog POST.json [--wait] [--json]
    python starter.py video FILE [--no-captions] [--renditions 720p,480p] [--wait] [--json]
    python starter.py video FILE --api http://spool.example.com   # upload through the API
    python starter.py status JOB_ID [--json]
    python starter.py wait JOB_ID [--json]
    python starter.py cancel JOB_ID [--json]

Exit codes: 0 done (or started), 1 the job failed or was cancelled, 2 bad input or usage
(or cancelling a job that has already ended), 3 ready with errors (some branch failed),
4 Temporal unreachable or unknown job.

Jobs are started, cancelled and read through the service layer (spool/service/), as the HTTP
API does: the same id policy, the same typed status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from spool.config import get_settings
from spool.models import FINAL_JOB_STATES, InvalidPostError, JobState, post_from_dict
from spool.observability import configure_logging
from spool.service import JobEnded, JobNotFound, jobs
from spool.service.views import JobView, VideoView
from spool.temporal import TemporalConnectError, connect, exit_process

EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_INPUT, EXIT_PARTIAL, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4
_EXIT_FOR_STATE = {
    JobState.READY: EXIT_OK,
    JobState.READY_WITH_ERRORS: EXIT_PARTIAL,
    JobState.FAILED: EXIT_JOB_FAILED,
    JobState.CANCELLED: EXIT_JOB_FAILED,
}


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def load_post(path: str):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", EXIT_BAD_INPUT) from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not valid JSON ({exc})", EXIT_BAD_INPUT) from None
    try:
        return post_from_dict(data)
    except (InvalidPostError, TypeError) as exc:
        raise CliError(f"{path}: invalid post: {exc}", EXIT_BAD_INPUT) from None


# A job as the command line shows it: from Temporal (JobView) or from a remote API (VideoView).
Status = JobView | VideoView


def as_json(status: Status) -> dict[str, Any]:
    """What --json prints: a job's status with its pipeline's own fields, or the API's view."""
    return status.to_dict() if isinstance(status, JobView) else status.model_dump(mode="json")


def render_steps(status: Status) -> Table:
    table = Table(
        title=f"{status.job_id}  [bold]{status.state}[/bold]", show_header=True, header_style="bold"
    )
    table.add_column("step")
    table.add_column("state")
    table.add_column("progress", justify="right")
    table.add_column("detail", overflow="fold")
    for step in status.steps:
        bar = ""
        if step.percent is not None:
            filled = int(step.percent / 5)
            bar = f"{'█' * filled}{'·' * (20 - filled)} {step.percent:5.1f}%"
        detail = step.last_error or step.detail or ""
        if step.attempt > 1:
            detail = f"attempt {step.attempt}: {detail}"
        table.add_row(step.name, step.state, bar, detail)
    if status.error:
        table.caption = f"error: {status.error}"
    return table


async def wait_for(client, job_id: str, *, live: bool, console: Console) -> JobView:
    """Poll the job until it reaches a final state, drawing its steps when live."""
    status = await jobs.status(client, job_id)
    view = Live(render_steps(status), console=console, refresh_per_second=4) if live else None
    with view or contextlib.nullcontext():
        while status.state not in FINAL_JOB_STATES:
            await asyncio.sleep(0.5)
            status = await jobs.status(client, job_id)
            if view is not None:
                view.update(render_steps(status))
    return status


def emit(args, console: Console, payload: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(payload, default=str), flush=True)
    else:
        console.print(human)


async def cmd_blog(args, client, settings, console) -> int:
    post = load_post(args.post_file)
    try:
        job = await jobs.start_blog(client, settings, post)
    except InvalidPostError as exc:
        raise CliError(f"{args.post_file}: invalid post: {exc}", EXIT_BAD_INPUT) from None
    return await finish_start(
        args, client, console, job.job_id, {"post_id": post.post_id, "version": post.version}
    )


async def cmd_video(args, client, settings, console) -> int:
    from spool.ingest import ingest_video

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file", EXIT_BAD_INPUT)
    renditions = [r.strip() for r in args.renditions.split(",")] if args.renditions else None
    try:
        inp = ingest_video(
            settings,
            path,
            owner_id=args.owner,
            captions=not args.no_captions,
            renditions=renditions,
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None
    job = await jobs.start_video(client, settings, inp)
    return await finish_start(args, client, console, job.job_id, {"video_id": inp.video_id})


async def upload_through_api(args, settings, console) -> int:
    """``video --api URL``: stream the file to a remote stack's API, which stores it in that
    stack's object storage and starts the job; no Temporal connection or shared disk needed.
    With --wait, progress is read from the API too."""
    import httpx

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file", EXIT_BAD_INPUT)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if not key:
        raise CliError("--api needs an API key: set SPOOL_API_KEY", EXIT_BAD_INPUT)
    data = {"captions": "false" if args.no_captions else "true", "owner_id": args.owner}
    if args.renditions:
        data["renditions"] = args.renditions
    base = args.api.rstrip("/")
    timeout = httpx.Timeout(30.0, write=None, read=300.0)
    try:
        async with httpx.AsyncClient(
            base_url=base, timeout=timeout, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            with path.open("rb") as fh:  # httpx streams the file part in chunks
                r = await http.post(
                    "/v1/videos",
                    data=data,
                    files={"file": ("upload", fh, "application/octet-stream")},
                )
            if r.status_code != 202:
                raise CliError(
                    f"{base} refused the upload: {api_error(r)}",
                    EXIT_BAD_INPUT if r.status_code < 500 else EXIT_UNAVAILABLE,
                )
            body = r.json()
            if not args.wait:
                emit(
                    args,
                    console,
                    {"job_id": body["job_id"], "video_id": body["video_id"]},
                    body["job_id"],
                )
                return EXIT_OK
            if not args.json:
                console.print(f"job {body['job_id']}")
            status = await poll_api(http, body["status_url"], live=not args.json, console=console)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the API at {base}: {exc}", EXIT_UNAVAILABLE) from None
    return report_final(args, console, status)


def api_error(r) -> str:
    try:
        return f"{r.status_code} {r.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{r.status_code} {r.text[:200]}"


async def poll_api(http, status_url: str, *, live: bool, console: Console) -> VideoView:
    async def fetch() -> VideoView:
        r = await http.get(status_url)
        r.raise_for_status()
        return VideoView.model_validate(r.json())

    status = await fetch()
    view = Live(render_steps(status), console=console, refresh_per_second=4) if live else None
    with view or contextlib.nullcontext():
        while status.state not in FINAL_JOB_STATES:
            await asyncio.sleep(0.5)
            status = await fetch()
            if view is not None:
                view.update(render_steps(status))
    return status


async def finish_start(args, client, console, job_id: str, extra: dict[str, Any]) -> int:
    if not args.wait:
        emit(args, console, {"job_id": job_id, **extra}, job_id)
        return EXIT_OK
    if not args.json:
        console.print(f"job {job_id}")
    status = await wait_for(client, job_id, live=not args.json, console=console)
    return report_final(args, console, status)


def report_final(args, console, status: Status) -> int:
    if args.json:
        print(json.dumps(as_json(status), default=str), flush=True)
    else:
        console.print(
            f"{status.job_id}: {status.state}" + (f" ({status.error})" if status.error else "")
        )
    return _EXIT_FOR_STATE.get(status.state, EXIT_JOB_FAILED)


async def cmd_status(args, client, settings, console) -> int:
    status = await jobs.status(client, args.job_id)
    if args.json:
        print(json.dumps(as_json(status), default=str), flush=True)
    else:
        console.print(render_steps(status))
    return EXIT_OK


async def cmd_wait(args, client, settings, console) -> int:
    status = await wait_for(client, args.job_id, live=not args.json, console=console)
    return report_final(args, console, status)


async def cmd_cancel(args, client, settings, console) -> int:
    try:
        await jobs.cancel(client, args.job_id)
    except JobEnded as exc:
        raise CliError(f"{args.job_id}: {exc}", EXIT_BAD_INPUT) from None
    emit(
        args,
        console,
        {"job_id": args.job_id, "cancel_requested": True},
        f"cancel requested for {args.job_id}",
    )
    return EXIT_OK


COMMANDS = {
    "blog": cmd_blog,
    "video": cmd_video,
    "status": cmd_status,
    "wait": cmd_wait,
    "cancel": cmd_cancel,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object")
    parser = argparse.ArgumentParser(prog="starter.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    blog = sub.add_parser("blog", parents=[common], help="publish a post from a JSON file")
    blog.add_argument("post_file")
    blog.add_argument("--wait", action="store_true", help="show live progress until done")
    video = sub.add_parser("video", parents=[common], help="process a video file")
    video.add_argument("file")
    video.add_argument("--no-captions", action="store_true")
    video.add_argument("--renditions", help="comma-separated, e.g. 720p,480p")
    video.add_argument("--owner", default="cli", help="owner id notified when the job ends")
    video.add_argument("--wait", action="store_true", help="show live progress until done")
    video.add_argument(
        "--api",
        metavar="URL",
        help="upload through a remote stack's API (key from SPOOL_API_KEY) "
        "instead of writing to object storage and starting the job here",
    )
    for name in ("status", "wait", "cancel"):
        p = sub.add_parser(name, parents=[common])
        p.add_argument("job_id")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    console = Console(stderr=args.json)
    if args.command == "video" and args.api:
        return await upload_through_api(args, settings, console)
    try:
        client = await connect(settings)
    except TemporalConnectError as exc:  # already one line naming the problem
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    try:
        return await COMMANDS[args.command](args, client, settings, console)
    except JobNotFound as exc:
        raise CliError(f"no job with id {exc}", EXIT_UNAVAILABLE) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Warnings only, as before; SPOOL_LOG_FORMAT=json makes them JSON lines on stderr.
    configure_logging(get_settings().log_format, default_level="WARNING")
    try:
        return asyncio.run(run(args))
    except CliError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "exit_code": exc.code}), flush=True)
        print(f"starter: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    exit_process(main())
