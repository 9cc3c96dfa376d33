"""Serving stored media from object storage with single HTTP byte ranges (206, Content-Range,
Accept-Ranges, If-Range), or a redirect to a short-lived presigned URL where the store has
them and the operator asked for it (bytes then go straight from the store to the client)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

from fastapi import Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from api.errors import ApiError
from spool.storage import KeyNotFound, ObjectStorage

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


_END = object()


async def _stream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull a blocking iterator (a file, an S3 body) from a thread, chunk by chunk."""
    try:
        while (data := await asyncio.to_thread(next, chunks, _END)) is not _END:
            yield data
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _suffix(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name[name.rfind("."):].lower() if "." in name else ""


async def file_response(request: Request, storage: ObjectStorage, key: str,
                        media_type: str | None = None, *,
                        redirect_seconds: int | None = None) -> Response:
    """The object under ``key``: whole (200), one range (206), or with ``redirect_seconds`` a
    307 to a presigned URL when the backend can make one."""
    if redirect_seconds:
        url = await asyncio.to_thread(storage.presigned_url, key, redirect_seconds)
        if url is not None:
            return RedirectResponse(url, status_code=307,
                                    headers={"Cache-Control": "private, no-store"})
    try:
        info = await asyncio.to_thread(storage.stat, key)
    except KeyNotFound:
        raise ApiError(404, "file not found") from None
    size = info.size
    media_type = media_type or MEDIA_TYPES.get(_suffix(key), "application/octet-stream")
    headers = {"Accept-Ranges": "bytes", "ETag": info.etag,
               "Cache-Control": "private, max-age=60"}
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != info.etag:
        wanted = None
    span = parse_range(wanted, size)
    first, last = span if span is not None else (0, size - 1)
    headers["Content-Length"] = str(last - first + 1 if size else 0)
    status = 200 if span is None else 206
    if span is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    try:
        chunks = await asyncio.to_thread(storage.iter_range, key, first, last)
    except KeyNotFound:  # deleted between stat and read
        raise ApiError(404, "file not found") from None
    return StreamingResponse(_stream(chunks), status_code=status, headers=headers,
                             media_type=media_type)
