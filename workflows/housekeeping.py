"""Sweeps started by Temporal Schedules (spool/schedules.py), so a deployment sweeps whether
or not it runs an API process, and the sweeps show in the UI's Schedules tab with each run's
result:

- SweepAbandonedWritesWorkflow, every hour (``spool-sweep-abandoned-writes``): the object
  store's writes begun long ago and never finished;
- SweepExpiredUploadsWorkflow, every 5 minutes (``spool-sweep-expired-uploads``): the
  resumable uploads past their expiry."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.housekeeping import HousekeepingActivities
    from spool.models.housekeeping import (
        SweepInput,
        SweepResult,
        UploadSweepInput,
        UploadSweepResult,
    )
    from workflows.steps import JobQueues, QueueKind, Step, StepBook

SWEEP = Step(
    "sweep", HousekeepingActivities.sweep_abandoned_writes, policies.SWEEP, QueueKind.PIPELINE
)

SWEEP_UPLOADS = Step(
    "sweep_uploads",
    HousekeepingActivities.sweep_expired,
    policies.SWEEP_UPLOADS,
    QueueKind.PIPELINE,
)


@workflow.defn(name="SweepAbandonedWritesWorkflow")
class SweepAbandonedWritesWorkflow:
    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        steps = StepBook([SWEEP.name], queues=JobQueues(pipeline=inp.queue_pipeline))
        hours = f"{inp.older_than_seconds / 3600:g} h"
        return await steps.execute(SWEEP, inp, summary=f"drop writes begun over {hours} ago")


@workflow.defn(name="SweepExpiredUploadsWorkflow")
class SweepExpiredUploadsWorkflow:
    @workflow.run
    async def run(self, inp: UploadSweepInput) -> UploadSweepResult:
        steps = StepBook([SWEEP_UPLOADS.name], queues=JobQueues(pipeline=inp.queue_pipeline))
        return await steps.execute(SWEEP_UPLOADS, inp, summary="end uploads past their expiry")
