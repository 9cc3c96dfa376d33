"""Direct uploads (S3 stores only): the client PUTs the video's parts straight to the store
with presigned URLs, so the bytes never pass through an API host; the API then checks what
the store holds against what was declared, completes the object and starts the job once.

A direct upload is an upload row like a tus one (same keys, per-key limits, expiry and
sweep); its part size is fixed at creation and kept in its options.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from spool.db import uploads as rows
from spool.db.uploads import UploadRow
from spool.service.uploads import UploadRefused, UploadService
from spool.storage import keys
from spool.storage.s3_multipart import MIN_PART_BYTES

PART_BYTES = "direct_part_bytes"  # the options' key of a direct upload's part size
MAX_PARTS = 10_000  # S3's ceiling
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's ceiling


def is_direct(row: UploadRow) -> bool:
    return PART_BYTES in row.options


def part_size_for(length: int, preferred: int) -> int:
    """The preferred part size, or larger when the upload would need too many parts."""
    fewest = -(-length // MAX_PARTS)
    size = max(preferred, MIN_PART_BYTES, fewest)
    return -(-size // (1024 * 1024)) * 1024 * 1024  # whole MiB


def _s3(service: UploadService):
    from spool.storage.s3 import S3Storage

    if not isinstance(service.storage, S3Storage):
        raise UploadRefused(
            409, "direct uploads need an S3 store (SPOOL_STORAGE_URL=s3://...): use tus"
        )
    return service.storage


async def create_direct(
    service: UploadService, owner_key: str, length: int, options: dict[str, Any]
) -> tuple[UploadRow, list[str]]:
    """The upload and the URL each part is PUT to, in order."""
    storage = _s3(service)
    part_bytes = part_size_for(length, service.settings.storage_part_size_mb * 1024 * 1024)
    row = await service.create(owner_key, length, {**options, PART_BYTES: part_bytes}, "")
    from spool.storage.s3_resumable import presigned_part_urls

    seconds = int(min(row.expires_at - service.clock(), MAX_PRESIGN_SECONDS))
    urls = await asyncio.to_thread(
        presigned_part_urls,
        storage,
        keys.source_key(row.video_id),
        row.handle or "",
        -(-length // part_bytes),
        seconds,
    )
    return row, urls


def parts_problem(parts: list[list[Any]], length: int, part_bytes: int) -> str | None:
    """Why the parts the store holds are not the declared upload, or None."""
    count = -(-length // part_bytes)
    numbers = [n for n, _, _ in parts]
    if numbers != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(numbers))
        extra = sorted(set(numbers) - set(range(1, count + 1)))
        return (
            f"the store holds parts {numbers[:20]} of the {count} declared"
            + (f"; missing {missing[:20]}" if missing else "")
            + (f"; not declared {extra[:20]}" if extra else "")
        )
    for number, _, size in parts:
        expected = part_bytes if number < count else length - part_bytes * (count - 1)
        if size != expected:
            return f"part {number} holds {size} bytes, not {expected}"
    return None


async def complete_direct(service: UploadService, row: UploadRow) -> UploadRow:
    """Check the parts, complete the object, start the job; repeated, the same job."""
    if row.state == rows.COMPLETE:
        await service.ensure_job(row)
        return row
    storage = _s3(service)
    from spool.storage.s3_resumable import complete_parts, listed_parts

    key, handle = keys.source_key(row.video_id), row.handle or ""
    owner = secrets.token_hex(16)
    if not await asyncio.to_thread(
        rows.take_lease, service.engine, row.upload_id, owner, service.clock(), 60.0
    ):
        raise UploadRefused(423, "this upload is being completed by another request; retry")
    try:
        parts = await asyncio.to_thread(listed_parts, storage, key, handle)
        problem = parts_problem(parts, row.length, int(row.options[PART_BYTES]))
        if problem is not None:
            raise UploadRefused(409, f"{problem}: PUT every part, then complete again")
        await asyncio.to_thread(complete_parts, storage, key, handle, parts)
        if not await asyncio.to_thread(
            rows.mark_complete, service.engine, row.upload_id, owner, row.length
        ):
            raise UploadRefused(409, "the upload was ended meanwhile")
    finally:
        await asyncio.to_thread(rows.release_lease, service.engine, row.upload_id, owner)
    row.state, row.received = rows.COMPLETE, row.length
    await service.ensure_job(row)
    return row
