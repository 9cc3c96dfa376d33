"""Run Spool workers for the chosen task queues.

    python worker.py                       # every queue: pipeline, media, captions
    python worker.py --queue media         # only transcoding, e.g. on a CPU-heavy machine
    python worker.py --queue captions --max-concurrent-activities 1

SIGINT/SIGTERM: stop polling, let running activities finish within the grace period, then
cancel them; exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig

from spool import observability, scratch
from spool.config import Settings, get_settings
from spool.process import single_threaded_blas
from spool.temporal import TemporalConnectError, connect, exit_process

QUEUE_KINDS = ("pipeline", "media", "captions")
log = logging.getLogger("spool.worker")


@dataclass
class QueueWork:
    name: str
    workflows: list = field(default_factory=list)
    activities: list = field(default_factory=list)
    max_concurrent_activities: int = 10


def usable_cpus() -> int:
    """CPUs this process may run on (taskset, cpusets), not all the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_concurrency(settings: Settings, kind: str) -> int:
    if kind == "media":
        # x264 uses several threads per encode; one encode per core keeps the CPUs busy
        # without thrashing.
        return settings.media_concurrency or usable_cpus()
    if kind == "captions":
        return max(1, settings.captions_concurrency)
    return max(1, settings.pipeline_concurrency)


def plan_queues(
    settings: Settings, kinds: list[str], max_concurrent: int | None = None
) -> list[QueueWork]:
    """What each task queue runs. Kinds that share a queue name share one worker."""
    from activities.blog import BlogActivities
    from activities.housekeeping import HousekeepingActivities
    from activities.video import VideoActivitySet
    from activities.webhooks import WebhookActivities
    from workflows.blog import BlogPublishWorkflow
    from workflows.captions import CaptionsWorkflow
    from workflows.deletion import VideoDeletionWorkflow
    from workflows.housekeeping import SweepAbandonedWritesWorkflow, SweepExpiredUploadsWorkflow
    from workflows.posts import PostWorkflow
    from workflows.video import VideoPipelineWorkflow

    video = VideoActivitySet.from_settings(settings)
    contents = {
        "pipeline": (
            [
                BlogPublishWorkflow,
                PostWorkflow,
                VideoPipelineWorkflow,
                CaptionsWorkflow,
                VideoDeletionWorkflow,
                SweepAbandonedWritesWorkflow,
                SweepExpiredUploadsWorkflow,
            ],
            [
                *BlogActivities(settings).activities(),
                *video.pipeline_activities(),
                *WebhookActivities(settings).activities(),
                *HousekeepingActivities(video.files.storage, settings).activities(),
            ],
        ),
        "media": ([], video.media_activities()),
        "captions": ([], video.captions_activities()),
    }
    queue_names = {
        "pipeline": settings.queue_pipeline,
        "media": settings.queue_media,
        "captions": settings.queue_captions,
    }
    planned: dict[str, QueueWork] = {}
    for kind in kinds:
        name = queue_names[kind]
        work = planned.setdefault(name, QueueWork(name=name, max_concurrent_activities=0))
        wfs, acts = contents[kind]
        work.workflows += wfs
        work.activities += acts
        work.max_concurrent_activities += max_concurrent or default_concurrency(settings, kind)
    return list(planned.values())


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The Worker Deployment version this worker polls as, or None (unversioned) when
    neither SPOOL_WORKER_DEPLOYMENT nor SPOOL_WORKER_BUILD_ID is set. Its runs stay on the
    version that started them (workflows/policies.py says why; docs/deploys.md)."""
    name, build_id = settings.worker_deployment, settings.worker_build_id
    if name is None and build_id is None:
        return None
    if name is None or build_id is None:
        raise ValueError(
            "set both SPOOL_WORKER_DEPLOYMENT and SPOOL_WORKER_BUILD_ID (versioned), or neither"
        )
    from workflows.policies import PINNED_RUNS

    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=name, build_id=build_id),
        use_worker_versioning=True,
        default_versioning_behavior=PINNED_RUNS,
    )


STICKY_TIMEOUT = timedelta(seconds=2)


def build_workers(
    client: Client,
    plan: list[QueueWork],
    executor: ThreadPoolExecutor,
    grace_seconds: float,
    deployment: WorkerDeploymentConfig | None = None,
) -> list[Worker]:
    return [
        Worker(
            client,
            task_queue=work.name,
            workflows=work.workflows,
            activities=work.activities,
            activity_executor=executor,
            max_concurrent_activities=work.max_concurrent_activities,
            graceful_shutdown_timeout=timedelta(seconds=grace_seconds),
            # The SDK otherwise batches heartbeats to 80% of the heartbeat timeout (8 s of
            # 10 s), which is how late a cancel would reach a running ffmpeg or Whisper.
            max_heartbeat_throttle_interval=timedelta(seconds=1),
            # Step durations and finished jobs for /metrics (docs/observability.md).
            interceptors=observability.worker_interceptors(),
            deployment_config=deployment,
            # A run's next task (or query) waits this long for the worker that ran its last
            # before any other takes it: a SIGKILLed worker's runs and their status queries
            # wait 2 s, not the SDK's 10 s. A live worker answers within it (why not less:
            # docs/notifications.md, the job's status during a fan-out).
            sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        )
        for work in plan
    ]


async def touch_heartbeat(path: Path, every: float) -> None:
    """Prove the event loop is alive: a wedged loop (or a stopped process) stops touching."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        await asyncio.to_thread(path.touch)
        await asyncio.sleep(every)


async def start_schedules(client: Client, settings: Settings) -> None:
    """Spool's Temporal Schedules (the hourly sweep), made or updated by every pipeline worker
    (spool/schedules.py): a deployment without an API process still sweeps. A worker that
    cannot (a namespace that refuses schedules) says so and goes on working."""
    from spool.schedules import ensure_schedules

    try:
        await ensure_schedules(client, settings)
    except Exception as exc:  # noqa: BLE001 - the jobs matter more than the sweep
        log.warning("could not create or update Spool's schedules: %s", exc)


def check_health(settings: Settings) -> int:
    """``worker.py --check-health``: 0 while the worker's heartbeat file is fresh."""
    path = settings.resolved_worker_heartbeat_file
    if path is None:
        print("worker: SPOOL_WORKER_HEARTBEAT_FILE is not set", file=sys.stderr)
        return 1
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"worker: no heartbeat file {path} (not started yet?)", file=sys.stderr)
        return 1
    limit = 3 * settings.worker_heartbeat_seconds
    if age > limit:
        print(f"worker: heartbeat {age:.0f} s old (limit {limit:.0f} s)", file=sys.stderr)
        return 1
    return 0


def log_plan(plan: list[QueueWork], deployment: WorkerDeploymentConfig | None) -> None:
    for work in plan:
        log.info(
            "polling task queue %r (%d concurrent activities)",
            work.name,
            work.max_concurrent_activities,
        )
    if deployment is not None:
        log.info(
            "worker deployment %r, build %r",
            deployment.version.deployment_name,
            deployment.version.build_id,
        )


async def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    deployment = deployment_config(settings)  # a half-set pair stops here, before connecting
    plan = plan_queues(settings, args.queue or list(QUEUE_KINDS), args.max_concurrent_activities)
    # Before connecting: the client takes the metrics runtime and tracing from it.
    metrics_server = observability.start_worker_telemetry(settings, args.metrics_port)
    client = await connect(settings, wait_seconds=args.connect_wait)
    threads = sum(w.max_concurrent_activities for w in plan) + 4
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="activity") as executor:
        workers = build_workers(client, plan, executor, args.grace_seconds, deployment)
        tasks = [asyncio.create_task(w.run()) for w in workers]
        log_plan(plan, deployment)
        await asyncio.to_thread(scratch.sweep_stale)  # what killed workers here left behind
        if "pipeline" in (args.queue or QUEUE_KINDS):
            await start_schedules(client, settings)
        if "captions" in (args.queue or QUEUE_KINDS):  # load Whisper once, before any job
            from spool.whisper import warm_up

            await asyncio.to_thread(warm_up, settings)
        beat = None
        if settings.resolved_worker_heartbeat_file is not None:
            beat = asyncio.create_task(
                touch_heartbeat(
                    settings.resolved_worker_heartbeat_file, settings.worker_heartbeat_seconds
                )
            )
        print(f"worker ready: {', '.join(w.name for w in plan)}", flush=True)
        stopped = asyncio.create_task(stop.wait())
        watched = [stopped, *tasks, *([beat] if beat else [])]
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down: finishing running activities (grace %ss)", args.grace_seconds)
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopped.cancel()
        if beat is not None:
            beat.cancel()
            results.extend(await asyncio.gather(beat, return_exceptions=True))
        await asyncio.to_thread(scratch.release)
        if metrics_server is not None:
            metrics_server.shutdown()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # python -OO drops docstrings.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--queue",
        action="append",
        choices=QUEUE_KINDS,
        help="kind of work to poll (repeatable; default: all)",
    )
    parser.add_argument(
        "--max-concurrent-activities",
        type=int,
        default=None,
        help="per queue; default depends on the kind of work",
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=30.0,
        help="how long running activities may finish after a stop signal",
    )
    parser.add_argument(
        "--connect-wait",
        type=float,
        default=30.0,
        help="seconds to keep retrying the first connection to Temporal",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port (0 = any free port, "
        "logged); default SPOOL_METRICS_PORT, else off",
    )
    parser.add_argument(
        "--check-health",
        action="store_true",
        help="exit 0 if a worker's heartbeat file is fresh (container health)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    single_threaded_blas()  # before Whisper loads numpy: see its docstring
    args = parse_args(argv)
    if args.check_health:
        return check_health(get_settings())
    try:
        # Inside the try: a bad SPOOL_LOG_FORMAT is one "worker: ..." message like any setting.
        observability.configure_logging(get_settings().log_format)  # SPOOL_LOG_FORMAT=json
        asyncio.run(run(args))
    except TemporalConnectError as exc:  # same exit code as starter.py: Temporal unavailable
        print(f"worker: {exc}", file=sys.stderr, flush=True)
        return 4
    except Exception as exc:  # noqa: BLE001 - one line for the operator, not a traceback
        print(f"worker: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        observability.shutdown()  # flush spans: the process leaves through os._exit
    return 0


if __name__ == "__main__":
    exit_process(main())
