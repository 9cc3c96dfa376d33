"""Streaming multipart upload straight into object storage, with the byte cap enforced while
reading.

The file part is streamed into a pending object (a temporary file on the local backend, a
multipart upload on S3) that becomes visible under its final key only on ``commit``, once the
whole request has been read and accepted; on any refusal (too large, malformed, bad options)
it is aborted, so nothing is left behind. Form fields are small and kept in memory (bounded).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from api.errors import ApiError
from spool.storage import ObjectStorage, PendingObject

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 4096
MAX_FIELDS = 20
FILE_FIELD = "file"


@dataclass
class Upload:
    fields: dict[str, list[str]] = field(default_factory=dict)
    file_bytes: int = 0
    filename: str | None = None
    pending: PendingObject | None = None

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None


class _Sink:
    """Collects the parts of one multipart body; file bytes go to storage in large writes."""

    def __init__(self, storage: ObjectStorage, key: str, max_bytes: int, chunk_bytes: int) -> None:
        self.storage = storage
        self.key = key
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.upload = Upload()
        self.buffer = bytearray()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self.error: ApiError | None = None
        self.files_seen = 0
        self.fields_seen = 0

    # python-multipart callbacks ------------------------------------------------------------
    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._is_file = False
        self._value = bytearray()

    # python-multipart bounds these (8 headers of at most ~4 KB per part).
    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in params:
            self._fail(ApiError(400, "multipart part without a form-data name"))
            return
        self._name = params[b"name"].decode("utf-8", "replace")
        self._is_file = self._name == FILE_FIELD
        if self._is_file:
            self.files_seen += 1
            if self.files_seen > 1:
                self._fail(ApiError(422, "only one file may be uploaded", field=FILE_FIELD))
                return
            filename = params.get(b"filename")
            self.upload.filename = filename.decode("utf-8", "replace") if filename else None
        else:
            # Counted per part, not per name: repeating one name must not grow memory either.
            self.fields_seen += 1
            if self.fields_seen > MAX_FIELDS:
                self._fail(ApiError(422, f"too many form fields (at most {MAX_FIELDS})"))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._is_file:
            self.upload.file_bytes += end - start
            if self.upload.file_bytes > self.max_bytes:
                self._fail(
                    ApiError(
                        413, f"upload exceeds the limit of {self.max_bytes} bytes", field=FILE_FIELD
                    )
                )
                return
            self.buffer += data[start:end]
        else:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                self._fail(ApiError(422, f"{self._name}: form field is too long", field=self._name))

    def on_part_end(self) -> None:
        if self.error is not None or self._name is None:
            return
        if not self._is_file:
            value = self._value.decode("utf-8", "replace")
            self.upload.fields.setdefault(self._name, []).append(value)

    def _fail(self, error: ApiError) -> None:
        if self.error is None:
            self.error = error

    # writing -------------------------------------------------------------------------------
    def take_buffer(self, force: bool = False) -> bytes | None:
        if self.buffer and (force or len(self.buffer) >= self.chunk_bytes):
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        return None

    async def flush(self, force: bool = False) -> None:
        """Hand buffered file bytes to storage (off the event loop: it may be a network)."""
        data = self.take_buffer(force)
        if data is None:
            return
        if self.upload.pending is None:
            self.upload.pending = await asyncio.to_thread(self.storage.begin_write, self.key)
        await asyncio.to_thread(self.upload.pending.write, data)


def _boundary(request: Request) -> bytes:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise ApiError(415, "send the video as multipart/form-data with a 'file' part")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "multipart/form-data without a valid boundary")
    return boundary


def _callbacks(sink: _Sink) -> MultipartCallbacks:
    """The parser's events the sink follows (headers to find the file part, its data)."""
    return {
        "on_part_begin": sink.on_part_begin,
        "on_header_field": sink.on_header_field,
        "on_header_value": sink.on_header_value,
        "on_header_end": sink.on_header_end,
        "on_headers_finished": sink.on_headers_finished,
        "on_part_data": sink.on_part_data,
        "on_part_end": sink.on_part_end,
    }


async def receive_upload(
    request: Request,
    storage: ObjectStorage,
    final_key: str,
    *,
    max_bytes: int,
    chunk_bytes: int,
    require_file: bool = True,
) -> Upload:
    """Read the request body once, streaming the 'file' part into a pending object for
    ``final_key``. The caller finishes with ``commit`` or ``discard``. Without
    ``require_file`` a body of fields only is accepted (``pending`` stays None)."""
    boundary = _boundary(request)
    declared = request.headers.get("content-length")
    if (
        declared
        and declared.isdigit()
        and int(declared) > max_bytes + 64 * 1024 + (MAX_FIELDS * MAX_FIELD_BYTES)
    ):
        raise ApiError(413, f"upload exceeds the limit of {max_bytes} bytes", field=FILE_FIELD)
    sink = _Sink(storage, final_key, max_bytes, chunk_bytes)
    parser = MultipartParser(boundary, _callbacks(sink))
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            try:
                parser.write(chunk)
            except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors
                raise ApiError(400, f"malformed multipart body: {exc}") from None
            if sink.error is not None:
                raise sink.error
            await sink.flush()
        try:
            parser.finalize()
        except Exception as exc:  # noqa: BLE001
            raise ApiError(400, f"malformed multipart body: {exc}") from None
        if sink.error is not None:
            raise sink.error
        await sink.flush(force=True)
        if sink.files_seen == 0 and require_file:
            raise ApiError(
                422, "file: is required (a multipart part named 'file')", field=FILE_FIELD
            )
        if sink.files_seen and sink.upload.file_bytes == 0:
            raise ApiError(422, "file: is empty", field=FILE_FIELD)
    except ClientDisconnect:
        await asyncio.shield(discard(sink.upload))
        raise ApiError(400, "client disconnected during upload") from None
    except BaseException:
        await asyncio.shield(discard(sink.upload))
        raise
    return sink.upload


async def commit(upload: Upload) -> None:
    """Make the upload visible under its final key."""
    assert upload.pending is not None
    await asyncio.to_thread(upload.pending.commit)


async def discard(upload: Upload) -> None:
    """Drop whatever was streamed; nothing is left in storage."""
    if upload.pending is not None:
        pending, upload.pending = upload.pending, None
        await asyncio.to_thread(pending.abort)
