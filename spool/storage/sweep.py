"""The periodic sweep of writes begun and never finished (docs/storage.md).

A process killed mid-upload, or an abort that could not reach a store that was down, leaves
bytes the store keeps and no object will ever name: S3 multipart uploads (whose parts are
stored, and billed, until aborted), temporary files of the local directory. The API runs
``sweep_forever``: once at its start, then every hour, it drops the writes begun more than
``SPOOL_STORAGE_ABANDONED_WRITE_SECONDS`` ago. Several API processes may sweep the same store;
each drop is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time

from spool.storage.base import ObjectStorage

SWEEP_EVERY_SECONDS = 3600.0
log = logging.getLogger("spool.storage")


async def sweep_forever(
    storage: ObjectStorage, *, older_than: float, every: float = SWEEP_EVERY_SECONDS
) -> None:
    """Sweep now, then every ``every`` seconds, until cancelled. A sweep that fails (the
    store is down, or cannot list uploads) is logged and tried again at the next one."""
    while True:
        try:
            swept = await asyncio.to_thread(
                storage.sweep_abandoned_writes, time.time() - older_than
            )
        except Exception as exc:  # noqa: BLE001 - the API goes on serving; next sweep retries
            log.warning(
                "sweeping abandoned writes in %s failed: %s (next try in %.0f s)",
                storage.describe(),
                exc,
                every,
            )
        else:
            if swept:
                log.info(
                    "dropped %d abandoned writes begun over %.0f s ago in %s",
                    swept,
                    older_than,
                    storage.describe(),
                )
        await asyncio.sleep(every)
