"""Serving stored media from object storage with HTTP byte ranges (RFC 9110 section 14: 206,
Content-Range, Accept-Ranges, If-Range), or a redirect to a short-lived presigned URL where the
store has them and the operator asked for it (bytes then go straight from the store to the
client). Starlette's FileResponse serves only local files; this works on every backend."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate, parsedate_to_datetime

from fastapi import Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from api.errors import ApiError
from spool.storage import KeyNotFound, ObjectStorage

CHUNK = 256 * 1024
# RFC 9110 14.1.2: int-range = first-pos "-" [ last-pos ], suffix-range = "-" suffix-length;
# no whitespace inside a range-spec.
_INT_RANGE = re.compile(r"([0-9]+)-([0-9]*)")  # RFC DIGIT is ASCII; \d is any script
_SUFFIX_RANGE = re.compile(r"-([0-9]+)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Beyond any object's size; longer digit strings are not handed to int() (which refuses
# numbers of thousands of digits) but read as this.
_HUGE = 10**19

MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
    ".json": "application/json",
}


def _number(digits: str) -> int:
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 18 else _HUGE


def _range_specs(header: str) -> list[str] | None:
    """The range-specs of a ``bytes`` ranges-specifier, or None when the header is not one
    (another unit, no "=", nothing listed). Empty list elements are skipped (RFC 9110 5.6.1)."""
    unit, eq, range_set = header.strip().partition("=")
    if not eq or not _TOKEN.fullmatch(unit) or unit.lower() != "bytes":
        return None
    specs = [spec.strip(" \t") for spec in range_set.split(",")]
    specs = [spec for spec in specs if spec]
    return specs or None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one satisfiable byte range; None to send the whole file.

    RFC 9110: a header in another unit, or malformed, is ignored (whole file); several ranges
    are answered with the whole file too (allowed, and it spares a multipart body); a suffix
    longer than the file is the whole file as a range; an unsatisfiable range (first byte at
    or past the end, or an empty suffix) is a 416.
    """
    specs = _range_specs(header) if header else None
    if specs is None or len(specs) > 1:
        return None
    spec = specs[0]
    if (suffix := _SUFFIX_RANGE.fullmatch(spec)) is not None:
        length = _number(suffix[1])
        if length == 0:
            raise _unsatisfiable(size)
        if size == 0:  # satisfiable, but there are no bytes to name: the (empty) whole file
            return None
        return max(0, size - length), size - 1
    if (span := _INT_RANGE.fullmatch(spec)) is None:
        return None
    first = _number(span[1])
    if span[2] and _number(span[2]) < first:
        return None  # invalid range-spec: ignored
    last = _number(span[2]) if span[2] else size - 1
    if first >= size:
        raise _unsatisfiable(size)
    return first, min(last, size - 1)


def last_modified(modified: float) -> str:
    return formatdate(int(modified), usegmt=True)


def if_range_matches(if_range: str, etag: str, modified: float, now: float) -> bool:
    """RFC 9110 13.1.5: the range is sent only if the validator still names this version.
    An entity tag must match strongly (never a weak W/ tag); a date must equal Last-Modified
    exactly, and counts only when Last-Modified is strong (a second or more in the past)."""
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag and not value.startswith("W/")
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return (
        date.tzinfo is not None and int(date.timestamp()) == int(modified) and now - modified >= 1
    )


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        f"range not satisfiable; the file has {size} bytes",
        headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


async def _stream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull a blocking iterator (a file, an S3 body) from a thread, chunk by chunk."""
    try:
        while (data := await asyncio.to_thread(next, chunks, None)) is not None:
            yield data
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _suffix(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name[name.rfind(".") :].lower() if "." in name else ""


async def file_response(
    request: Request,
    storage: ObjectStorage,
    key: str,
    media_type: str | None = None,
    *,
    redirect_seconds: int | None = None,
) -> Response:
    """The object under ``key``: whole (200), one range (206), or with ``redirect_seconds`` a
    307 to a presigned URL when the backend can make one."""
    if redirect_seconds:
        url = await asyncio.to_thread(storage.presigned_url, key, redirect_seconds)
        if url is not None:
            return RedirectResponse(
                url, status_code=307, headers={"Cache-Control": "private, no-store"}
            )
    try:
        info = await asyncio.to_thread(storage.stat, key)
    except KeyNotFound:
        raise ApiError(404, "file not found") from None
    size = info.size
    media_type = media_type or MEDIA_TYPES.get(_suffix(key), "application/octet-stream")
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": info.etag,
        "Last-Modified": last_modified(info.modified),
        "Cache-Control": "private, max-age=60",
    }
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and not if_range_matches(
        if_range, info.etag, info.modified, time.time()
    ):
        wanted = None  # the client's copy is another version: send this one whole
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
    return StreamingResponse(
        _stream(chunks), status_code=status, headers=headers, media_type=media_type
    )
