"""Serving stored media with single HTTP byte ranges (206, Content-Range, Accept-Ranges)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from api.errors import ApiError

CHUNK = 256 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")

MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".vtt": "text/vtt; charset=utf-8", ".srt": "application/x-subrip; charset=utf-8",
               ".json": "application/json"}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one satisfiable range; None to send the whole file.

    A malformed or multi-range header is ignored (RFC 9110 allows that); an unsatisfiable
    one is a 416.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix: the last N bytes
        length = int(last_s)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None
    if first >= size:
        raise _unsatisfiable(size)
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(416, f"range not satisfiable; the file has {size} bytes",
                    headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})


async def _read(path: Path, first: int, last: int) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(fh.seek, first)
        remaining = last - first + 1
        while remaining > 0:
            data = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        await asyncio.to_thread(fh.close)


async def file_response(request: Request, path: Path, media_type: str | None = None
                        ) -> Response:
    try:
        stat = await asyncio.to_thread(os.stat, path)
    except FileNotFoundError:
        raise ApiError(404, "file not found") from None
    size = stat.st_size
    media_type = media_type or MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, max-age=60"}
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != etag:
        wanted = None
    span = parse_range(wanted, size)
    if request.method == "HEAD":
        headers["Content-Length"] = str(size if span is None else span[1] - span[0] + 1)
        return Response(status_code=200 if span is None else 206, headers=headers,
                        media_type=media_type)
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_read(path, 0, size - 1), headers=headers,
                                 media_type=media_type)
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(_read(path, first, last), status_code=206, headers=headers,
                             media_type=media_type)
