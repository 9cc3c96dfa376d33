"""The tus 1.0 protocol's headers, as the upload routes (api/routes/uploads.py) read and
write them: versions, extensions, metadata, checksums, and the request body read with an
idle timeout (https://tus.io/protocols/resumable-upload).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import AsyncIterator

from starlette.requests import Request

from api.errors import ApiError
from spool.service.receive import BodyInterrupted, Checksum

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = "sha1"
OFFSET_STREAM = "application/offset+octet-stream"
MAX_METADATA_CHARS = 8192
# A request slower than this many bytes per idle timeout is cut (a slow loris).
MIN_WINDOW_BYTES = 16 * 1024
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def tus_headers(**extra: str) -> dict[str, str]:
    """Headers every tus answer carries, and ``extra`` (``Upload_Offset`` -> Upload-Offset)."""
    return {"Tus-Resumable": VERSION, **{k.replace("_", "-"): v for k, v in extra.items()}}


def check_version(request: Request) -> None:
    """412 unless the request speaks tus 1.0.0 (every request but OPTIONS must say so)."""
    sent = request.headers.get("tus-resumable")
    if sent != VERSION:
        said = "no Tus-Resumable header" if sent is None else f"Tus-Resumable {sent[:20]!r}"
        raise ApiError(
            412,
            f"{said}: this server speaks tus {VERSION} (send 'Tus-Resumable: {VERSION}')",
            field="Tus-Resumable",
            headers=tus_headers(Tus_Version=VERSION),
        )


def number_header(request: Request, name: str) -> int | None:
    """A non-negative integer header, None when absent; 400 naming it when malformed."""
    value = request.headers.get(name)
    if value is None:
        return None
    if not value.strip().isdigit() or len(value.strip()) > 18:
        raise ApiError(400, f"{name}: must be a non-negative integer", field=name)
    return int(value.strip())


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (the value optional)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_CHARS:
        raise ApiError(400, "Upload-Metadata is too long", field="Upload-Metadata")
    found: dict[str, str] = {}
    for pair in header.split(","):
        key, _, value = pair.strip().partition(" ")
        if not _METADATA_KEY.match(key) or key in found:
            raise ApiError(
                400, f"Upload-Metadata: bad or repeated key {key[:64]!r}", field="Upload-Metadata"
            )
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(
                400,
                f"Upload-Metadata: {key}'s value is not base64 of UTF-8 text",
                field="Upload-Metadata",
            ) from None
    return found


def parse_checksum(header: str | None) -> Checksum | None:
    """``Upload-Checksum: sha1 <base64 digest>``; 400 for an algorithm not supported."""
    if header is None:
        return None
    algorithm, _, digest = header.strip().partition(" ")
    if algorithm.lower() != "sha1":
        raise ApiError(
            400,
            f"Upload-Checksum: algorithm {algorithm[:20]!r} is not supported "
            f"(Tus-Checksum-Algorithm: {CHECKSUM_ALGORITHMS})",
            field="Upload-Checksum",
        )
    try:
        raw = base64.b64decode(digest.strip(), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 20:
        raise ApiError(400, "Upload-Checksum: not a base64 sha1 digest", field="Upload-Checksum")
    return Checksum("sha1", raw)


def check_content_type(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != OFFSET_STREAM:
        raise ApiError(
            415, f"send the bytes as Content-Type: {OFFSET_STREAM}", field="Content-Type"
        )


async def body_chunks(request: Request, idle_seconds: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; BodyInterrupted when the client goes away, or sends
    less than MIN_WINDOW_BYTES in any ``idle_seconds`` (a 1 byte/s sender holds a request,
    and an upload's lease, as long as silence would: it is cut the same)."""
    loop = asyncio.get_running_loop()
    window_start, window_bytes = loop.time(), 0
    while True:
        try:
            async with asyncio.timeout(idle_seconds):  # no task per message, as wait_for makes
                message = await request.receive()
        except TimeoutError:
            raise _idle(idle_seconds) from None
        if message["type"] == "http.disconnect":
            raise BodyInterrupted("the client went away mid-body")
        data = message.get("body", b"")
        window_bytes += len(data)
        if loop.time() - window_start >= idle_seconds:
            if window_bytes < MIN_WINDOW_BYTES:
                raise _idle(idle_seconds)
            window_start, window_bytes = loop.time(), 0
        if data:
            yield data
        if not message.get("more_body", False):
            return


def _idle(seconds: float) -> BodyInterrupted:
    return BodyInterrupted(
        f"less than {MIN_WINDOW_BYTES} bytes in {seconds:g} s: the request was cut "
        "(what arrived is kept; resume from Upload-Offset)",
        408,
    )
