"""Housekeeping steps run by Temporal Schedules (spool/schedules.py): dropping writes to the
object store that were begun and never finished, and ending resumable uploads past their
expiry (docs/storage.md)."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from spool.config import Settings
from spool.db import get_engine
from spool.models.housekeeping import (
    SweepInput,
    SweepResult,
    UploadSweepInput,
    UploadSweepResult,
)
from spool.service.uploads import UploadService
from spool.storage import ObjectStorage


class HousekeepingActivities:
    """Built once per worker with its storage client (and its settings, for the database)."""

    def __init__(self, storage: ObjectStorage, settings: Settings | None = None) -> None:
        self.storage = storage
        self.settings = settings

    def activities(self) -> list[object]:
        return [self.sweep_abandoned_writes, self.sweep_expired]

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

    @activity.defn(name="uploads.sweep_expired")
    async def sweep_expired(self, inp: UploadSweepInput) -> UploadSweepResult:
        """End the resumable uploads past their expiry (freeing what the store holds for
        them) and start the job of any complete upload whose start was lost with its API
        process. Each end is conditional on the upload's row, so a sweep running beside
        another, or beside a request, ends an upload once."""
        if self.settings is None:
            raise RuntimeError("uploads.sweep_expired needs the worker's settings")
        engine = await asyncio.to_thread(get_engine, self.settings)
        uploads = UploadService(self.settings, engine, self.storage, activity.client())
        ended = await uploads.sweep()
        if ended:
            activity.logger.info("ended %d expired uploads", ended)
        return UploadSweepResult(ended=ended)
