"""An object written in parts to an S3-compatible store: visible whole once completed, and
nothing at all if it is aborted or never completed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from spool.storage.base import PendingObject
from spool.storage.s3_errors import translated

if TYPE_CHECKING:
    from spool.storage.s3 import S3Storage

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's floor for every part but the last


class MultipartPending(PendingObject):
    """Buffers up to one part; the first full part starts a multipart upload, commit completes
    it (or sends the whole small object in one PUT), abort drops the upload on the server."""

    def __init__(self, storage: S3Storage, key: str, object_key: str) -> None:
        self.key = key
        self._storage = storage
        self._object_key = object_key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._open = True
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        assert self._open, "write after commit or abort"
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= self._storage.part_size:
            self._send_part()

    def _send_part(self) -> None:
        # The whole buffer goes as one part (>= part size), so there is no copy to slice it.
        body, self._buffer = self._buffer, bytearray()
        s3, bucket = self._storage.client, self._storage.bucket
        with translated(self._storage, self.key):
            if self._upload_id is None:
                created = s3.create_multipart_upload(Bucket=bucket, Key=self._object_key)
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            sent = s3.upload_part(
                Bucket=bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def commit(self) -> None:
        assert self._open, "commit after commit or abort"
        self._open = False
        try:
            if self._upload_id is None:
                self._put_whole()
            else:
                self._complete()
        except BaseException:
            self._abort_upload()
            raise

    def _put_whole(self) -> None:
        body, self._buffer = bytes(self._buffer), bytearray()
        with translated(self._storage, self.key):
            self._storage.client.put_object(
                Bucket=self._storage.bucket, Key=self._object_key, Body=body
            )

    def _complete(self) -> None:
        if self._buffer:
            self._send_part()
        with translated(self._storage, self.key):
            self._storage.client.complete_multipart_upload(
                Bucket=self._storage.bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._upload_id = None

    def abort(self) -> None:
        self._open = False
        self._buffer = bytearray()
        self._abort_upload()

    def _abort_upload(self) -> None:
        """Best effort: abort runs while another error is propagating, which must not be
        masked; a bucket lifecycle rule reaps uploads that could not be aborted."""
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            self._storage.client.abort_multipart_upload(
                Bucket=self._storage.bucket, Key=self._object_key, UploadId=upload_id
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "could not abort multipart upload %s of %r in %s: %s",
                upload_id,
                self.key,
                self._storage.describe(),
                exc,
            )
