"""Spool's command-line client: hand work to Spool, get a job id back at once.

    python starter.py blog POST.json [--wait] [--json]
    python starter.py video FILE [--no-captions] [--renditions 720p,480p] [--wait] [--json]
    python starter.py status JOB_ID [--json]
    python starter.py wait JOB_ID [--json]
    python starter.py cancel JOB_ID [--json]
    python starter.py delete-video VIDEO_ID [--json]
    python starter.py unpublish POST_ID [--json]
    python starter.py delete POST_ID [--json]
    python starter.py schedule POST_ID (--at TIME | --cancel) [--json]

Every command goes straight to the stack (Temporal, object storage, the database), or with
``--api URL`` through a Spool API (key from SPOOL_API_KEY). Either way --json prints the
API's view of the job (spool/service/views.py): the same keys and values, URLs as paths
under the API's base.

Exit codes: 0 done (or started, or a delete or an operation on a post accepted), 1 the job
failed or was cancelled, 2 bad input or usage (or cancelling a job that has already ended, or
an operation on a post that is too late or does not apply: a cancel after the scheduled
time), 3 ready with errors (some branch failed), 4 Temporal, the database or the API
unreachable, or unknown job, video or post.
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

from spool.clients import (
    AnyJobView,
    ApiClient,
    DirectClient,
    JobClient,
    PostOpRefused,
    Refused,
    Unreachable,
)
from spool.config import Settings, get_settings
from spool.models import (
    FINAL_JOB_STATES,
    InvalidPostError,
    JobState,
    Post,
    PostOpKind,
    post_from_dict,
)
from spool.models.video import normalize_renditions
from spool.observability import configure_logging
from spool.service import JobEnded, JobNotFound
from spool.service.deletion import VideoNotFound
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


def load_post(path: str) -> Post:
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


def as_json(view: AnyJobView) -> dict[str, Any]:
    """What --json prints: the job's view, the same whichever way it was read."""
    return view.model_dump(mode="json")


def render_steps(view: AnyJobView) -> Table:
    table = Table(
        title=f"{view.job_id}  [bold]{view.state}[/bold]", show_header=True, header_style="bold"
    )
    table.add_column("step")
    table.add_column("state")
    table.add_column("progress", justify="right")
    table.add_column("detail", overflow="fold")
    for step in view.steps:
        bar = ""
        if step.percent is not None:
            filled = int(step.percent / 5)
            bar = f"{'█' * filled}{'·' * (20 - filled)} {step.percent:5.1f}%"
        detail = step.last_error or step.detail or ""
        if step.attempt > 1:
            detail = f"attempt {step.attempt}: {detail}"
        table.add_row(step.name, step.state, bar, detail)
    unavailable = getattr(view, "status_unavailable", None) or getattr(view, "unavailable", None)
    if view.error:
        table.caption = f"error: {view.error}"
    elif unavailable and not view.steps:
        table.caption = unavailable
    return table


async def wait_for(jobs: JobClient, job_id: str, *, live: bool, console: Console) -> AnyJobView:
    """Poll the job until it reaches a final state, drawing its steps when live."""
    view = await jobs.view(job_id)
    screen = Live(render_steps(view), console=console, refresh_per_second=4) if live else None
    with screen or contextlib.nullcontext():
        while view.state not in FINAL_JOB_STATES:
            await asyncio.sleep(0.5)
            view = await jobs.view(job_id)
            if screen is not None:
                screen.update(render_steps(view))
    return view


def emit(args: argparse.Namespace, console: Console, payload: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(payload), flush=True)
    else:
        console.print(human)


async def cmd_blog(args: argparse.Namespace, jobs: JobClient, console: Console) -> int:
    post = load_post(args.post_file)
    try:
        job_id = await jobs.start_blog(post)
    except Refused as exc:
        raise CliError(f"{args.post_file}: {exc}", EXIT_BAD_INPUT) from None
    return await finish_start(args, jobs, console, job_id)


async def cmd_video(args: argparse.Namespace, jobs: JobClient, console: Console) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file", EXIT_BAD_INPUT)
    try:  # checked here, so a refused request stores nothing, whichever the transport
        renditions = normalize_renditions(args.renditions.split(",")) if args.renditions else None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None
    job_id = await jobs.start_video(
        path, owner_id=args.owner, captions=not args.no_captions, renditions=renditions
    )
    return await finish_start(args, jobs, console, job_id)


async def finish_start(
    args: argparse.Namespace, jobs: JobClient, console: Console, job_id: str
) -> int:
    """Started: print the job's view (--json) or its id, or wait for it with --wait."""
    if not args.wait:
        if args.json:
            print(json.dumps(as_json(await jobs.view(job_id))), flush=True)
        else:
            console.print(job_id)
        return EXIT_OK
    if not args.json:
        console.print(f"job {job_id}")
    view = await wait_for(jobs, job_id, live=not args.json, console=console)
    return report_final(args, console, view)


def report_final(args: argparse.Namespace, console: Console, view: AnyJobView) -> int:
    if args.json:
        print(json.dumps(as_json(view)), flush=True)
    else:
        console.print(f"{view.job_id}: {view.state}" + (f" ({view.error})" if view.error else ""))
    return _EXIT_FOR_STATE.get(JobState(view.state), EXIT_JOB_FAILED)


async def cmd_status(args: argparse.Namespace, jobs: JobClient, console: Console) -> int:
    view = await jobs.view(args.job_id)
    if args.json:
        print(json.dumps(as_json(view)), flush=True)
    else:
        console.print(render_steps(view))
    return EXIT_OK


async def cmd_wait(args: argparse.Namespace, jobs: JobClient, console: Console) -> int:
    view = await wait_for(jobs, args.job_id, live=not args.json, console=console)
    return report_final(args, console, view)


async def cmd_cancel(args: argparse.Namespace, jobs: JobClient, console: Console) -> int:
    await jobs.cancel(args.job_id)
    emit(
        args,
        console,
        {"job_id": args.job_id, "cancel_requested": True},
        f"cancel requested for {args.job_id}",
    )
    return EXIT_OK


async def cmd_delete_video(args: argparse.Namespace, jobs: JobClient, console: Console) -> int:
    accepted = await jobs.delete_video(args.video_id)
    emit(
        args,
        console,
        accepted.model_dump(mode="json"),
        f"deleting video {accepted.video_id} (job {accepted.job_id})",
    )
    return EXIT_OK


async def cmd_post_op(args: argparse.Namespace, jobs: JobClient, console: Console) -> int:
    """unpublish, delete, schedule (--at TIME or --cancel) one post."""
    kind = {
        "unpublish": PostOpKind.UNPUBLISH,
        "delete": PostOpKind.DELETE,
        "schedule": PostOpKind.CANCEL_SCHEDULE
        if getattr(args, "cancel", False)
        else PostOpKind.SCHEDULE,
    }[args.command]
    if kind == PostOpKind.SCHEDULE and not args.at:
        raise CliError(
            "schedule: give --at TIME (ISO 8601 with a zone) or --cancel", EXIT_BAD_INPUT
        )
    try:
        accepted = await jobs.operate_post(kind, args.post_id, getattr(args, "at", None))
    except PostOpRefused as exc:
        raise CliError(
            f"{args.post_id}: {exc}", EXIT_UNAVAILABLE if exc.not_found else EXIT_BAD_INPUT
        ) from None
    state = accepted.state or "accepted"
    emit(
        args,
        console,
        accepted.model_dump(mode="json"),
        f"{args.post_id}: {kind} {'absorbed' if accepted.absorbed else state} ({accepted.job_id})",
    )
    return EXIT_OK


COMMANDS = {
    "blog": cmd_blog,
    "video": cmd_video,
    "status": cmd_status,
    "wait": cmd_wait,
    "cancel": cmd_cancel,
    "delete-video": cmd_delete_video,
    "unpublish": cmd_post_op,
    "delete": cmd_post_op,
    "schedule": cmd_post_op,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object")
    common.add_argument(
        "--api",
        metavar="URL",
        help="go through a Spool API (key from SPOOL_API_KEY) instead of straight to "
        "Temporal, object storage and the database",
    )
    parser = argparse.ArgumentParser(prog="starter.py", description=(__doc__ or "").splitlines()[0])
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
    for name, what in (
        ("status", "print a job's state and steps"),
        ("wait", "show live progress until the job ends"),
        ("cancel", "ask a running job to stop"),
    ):
        p = sub.add_parser(name, parents=[common], help=what)
        p.add_argument("job_id")
    delete = sub.add_parser(
        "delete-video", parents=[common], help="delete a video: its job, files and records"
    )
    delete.add_argument("video_id")
    for name, what in (
        ("unpublish", "take a post down (kept, to publish again)"),
        ("delete", "delete a post (its id may be published afresh later)"),
        ("schedule", "move a scheduled post's time (--at) or cancel it (--cancel)"),
    ):
        p = sub.add_parser(name, parents=[common], help=what)
        p.add_argument("post_id")
        if name == "schedule":
            when = p.add_mutually_exclusive_group()
            when.add_argument("--at", metavar="TIME", help="ISO 8601 with a zone, in the future")
            when.add_argument("--cancel", action="store_true", help="cancel the schedule")
    return parser.parse_args(argv)


async def open_client(args: argparse.Namespace, settings: Settings) -> JobClient:
    """Through the API when --api names one, else straight to the stack."""
    if args.api:
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return ApiClient(args.api, key)
    try:
        client = await connect(settings)
    except TemporalConnectError as exc:  # already one line naming the problem
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    return DirectClient(client, settings)


async def run(args: argparse.Namespace) -> int:
    console = Console(stderr=args.json)
    jobs = await open_client(args, get_settings())
    try:
        return await COMMANDS[args.command](args, jobs, console)
    except JobNotFound as exc:
        raise CliError(f"no job with id {exc}", EXIT_UNAVAILABLE) from None
    except VideoNotFound as exc:
        raise CliError(f"no video {exc}: nothing was deleted", EXIT_UNAVAILABLE) from None
    except JobEnded as exc:
        raise CliError(f"{exc.job_id}: {exc}", EXIT_BAD_INPUT) from None
    except Refused as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from None
    except Unreachable as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    finally:
        await jobs.aclose()


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
