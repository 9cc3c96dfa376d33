"""Housekeeping steps run by Temporal Schedules (spool/schedules.py): dropping writes to the
object store that were begun and never finished (docs/storage.md)."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from spool.models.housekeeping import SweepInput, SweepResult
from spool.storage import ObjectStorage


class HousekeepingActivities:
    """Built once per worker with its storage client."""

    def __init__(self, storage: ObjectStorage) -> None:
        self.storage = storage

    @activity.defn(name="storage.sweep_abandoned_writes")
    async def sweep_abandoned_writes(self, inp: SweepInput) -> SweepResult:
        """A process killed mid-upload, or an abort that could not reach a store that was
        down, leaves bytes the store keeps and no object will ever name (S3 multipart
        uploads, the local directory's temporary files). Each drop is idempotent, so a retry
        or a sweep running beside another is harmless."""
        # The cut-off is the worker's clock at the attempt, never the workflow's.
        begun_before = time.time() - inp.older_than_seconds
        swept = await asyncio.to_thread(self.storage.sweep_abandoned_writes, begun_before)
        store = self.storage.describe()
        if swept:
            activity.logger.info(
                "dropped %d abandoned writes begun over %.0f s ago in %s",
                swept,
                inp.older_than_seconds,
                store,
            )
        return SweepResult(swept=swept, store=store)
