"""SweepAbandonedWritesWorkflow: one sweep of the object store's abandoned writes, started
every hour by the Temporal Schedule ``spool-sweep-abandoned-writes`` (spool/schedules.py), so
a deployment sweeps whether or not it runs an API process, and the sweeps show in the UI's
Schedules tab with each run's result."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.policies as policies  # see workflows/blog.py: no re-run per workflow
    from activities.housekeeping import HousekeepingActivities
    from spool.models.housekeeping import SweepInput, SweepResult
    from workflows.steps import JobQueues, QueueKind, Step, StepBook

SWEEP = Step(
    "sweep", HousekeepingActivities.sweep_abandoned_writes, policies.SWEEP, QueueKind.PIPELINE
)


@workflow.defn(name="SweepAbandonedWritesWorkflow")
class SweepAbandonedWritesWorkflow:
    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        steps = StepBook([SWEEP.name], queues=JobQueues(pipeline=inp.queue_pipeline))
        return await steps.execute(SWEEP, inp)
