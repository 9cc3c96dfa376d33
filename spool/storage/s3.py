"""Object storage in any S3-compatible store: AWS S3, R2, SeaweedFS, Ceph, S3Proxy.

Atomicity comes from S3 itself: a PUT or a completed multipart upload becomes visible whole
under its key, and an upload that is never completed (or is aborted) leaves no object.

Settings win; anything left unset falls back to boto3's own chain (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL, profiles, instance roles).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from boto3.session import Session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error

from spool.config import Settings
from spool.storage.base import (
    READ_CHUNK,
    KeyNotFound,
    ObjectInfo,
    ObjectStorage,
    PendingObject,
    StorageUnavailable,
    check_key,
    check_prefix,
)

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's floor for every part but the last
DELETE_BATCH = 1000  # S3's ceiling for one DeleteObjects call
# Uploads of a put_file run in this many threads; memory is about this many parts.
TRANSFER_THREADS = 2
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
ACCESS_DENIED_CODES = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}
NO_BUCKET_CODES = {"NoSuchBucket"}


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix"); the prefix may be ''."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"SPOOL_STORAGE_URL={url!r}: expected s3://bucket/prefix")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    return parts.netloc, prefix


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _addressing_style(settings: Settings) -> str:
    """Path style for a self-hosted endpoint: bucket.127.0.0.1 or bucket.localhost rarely
    resolve, while every S3-compatible server understands /bucket/key."""
    style = settings.s3_addressing_style
    if style != "auto":
        return style
    return "path" if (settings.s3_endpoint_url or _env_endpoint()) else "auto"


def _client_config(settings: Settings) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=60,
        # The API streams several media files at once, each holding a connection.
        max_pool_connections=32,
        signature_version="s3v4",
        s3={"addressing_style": _addressing_style(settings)},
        # botocore >= 1.36 adds CRC32 checksum headers to every upload by default; many
        # S3-compatible servers (S3Proxy, older Ceph/R2) answer NotImplemented to them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def make_client(settings: Settings) -> Any:
    """A boto3 S3 client from the settings; unset values fall back to boto3's chain."""
    secret = settings.s3_secret_access_key
    client = Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        # botocore itself reads only AWS_DEFAULT_REGION; AWS_REGION is what the other SDKs
        # (and Lambda, ECS) set, so it counts too.
        region_name=settings.s3_region or os.environ.get("AWS_REGION") or None,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=_client_config(settings),
    )
    client.meta.events.register("before-sign.s3.DeleteObjects", _content_md5_instead_of_crc)
    return client


def _content_md5_instead_of_crc(request: Any, **_: Any) -> None:
    """DeleteObjects must carry a checksum; send Content-MD5 (understood by every S3-compatible
    server) rather than botocore's newer x-amz-checksum-crc32 (refused by several)."""
    for header in list(request.headers.keys()):
        lower = header.lower()
        if lower.startswith("x-amz-checksum-") or lower == "x-amz-sdk-checksum-algorithm":
            del request.headers[header]
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class _MultipartPending(PendingObject):
    """Buffers up to one part; the first full part starts a multipart upload, commit completes
    it (or sends the whole small object in one PUT), abort drops the upload on the server."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.key = key
        self._storage = storage
        self._object_key = storage._object_key(key)
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
        with self._storage._translated(self.key):
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
        with self._storage._translated(self.key):
            self._storage.client.put_object(
                Bucket=self._storage.bucket, Key=self._object_key, Body=body
            )

    def _complete(self) -> None:
        if self._buffer:
            self._send_part()
        with self._storage._translated(self.key):
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


class S3Storage(ObjectStorage):
    def __init__(
        self, client: Any, bucket: str, prefix: str = "", part_size: int = 16 * 1024 * 1024
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = max(part_size, MIN_PART_BYTES)
        self._transfer = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=TRANSFER_THREADS,
            use_threads=True,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        bucket, prefix = parse_storage_url(settings.storage_url or "")
        return cls(
            make_client(settings),
            bucket,
            prefix,
            part_size=settings.storage_part_size_mb * 1024 * 1024,
        )

    # --- keys ----------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _listing_prefix(self, prefix: str) -> str:
        folder = check_prefix(prefix)
        return f"{self.prefix}/{folder}" if self.prefix else folder

    def _storage_key(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    # --- errors --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translated(self, key: str | None = None) -> Iterator[None]:
        """botocore's errors as the interface's: KeyNotFound or StorageUnavailable."""
        try:
            yield
        except (S3UploadFailedError, RetriesExceededError) as exc:
            # boto3's transfer manager wraps the error that stopped it; judge that one.
            cause = exc.__cause__ or exc.__context__ or getattr(exc, "last_exception", None)
            translated = self._translate(cause, key) if cause is not None else exc
            if translated is exc or translated is cause:
                raise
            raise translated from exc
        except (BotoCoreError, ClientError, Urllib3Error) as exc:
            translated = self._translate(exc, key)
            if translated is exc:
                raise
            raise translated from exc

    def _translate(self, exc: BaseException, key: str | None) -> BaseException:
        if isinstance(exc, ClientError):
            return self._client_error(exc, key)
        if isinstance(exc, NoCredentialsError):
            return StorageUnavailable(
                f"{self.describe()}: no S3 credentials (set "
                "SPOOL_S3_ACCESS_KEY_ID or AWS_ACCESS_KEY_ID)"
            )
        if isinstance(exc, (BotoConnectionError, HTTPClientError, Urllib3Error)):
            return StorageUnavailable(f"{self.describe()} is unreachable: {exc}")
        return exc

    def _client_error(self, exc: ClientError, key: str | None) -> Exception:
        code, status = _error_code(exc), _http_status(exc)
        if code in NO_BUCKET_CODES:
            return StorageUnavailable(f"{self.describe()}: no such bucket {self.bucket!r}")
        if code == "NoSuchUpload":  # reaped by a lifecycle rule, or aborted by a peer
            return StorageUnavailable(
                f"{self.describe()}: the multipart upload of {key!r} "
                "is gone; write the object again"
            )
        if key is not None and code in NOT_FOUND_CODES:  # "404": a HEAD answer has no body
            return KeyNotFound(f"no object {key!r} in {self.describe()}")
        if code in ACCESS_DENIED_CODES or status == 403:
            return StorageUnavailable(
                f"{self.describe()}: access denied ({code}); check the "
                "credentials and the bucket policy"
            )
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "ServiceUnavailable"):
            return StorageUnavailable(f"{self.describe()} failed: {code} (HTTP {status})")
        return exc

    # --- writing -------------------------------------------------------------------------

    def begin_write(self, key: str) -> PendingObject:
        return _MultipartPending(self, key)

    def put_file(self, local_path: str | Path, key: str) -> None:
        object_key = self._object_key(key)
        with self._translated(key):
            self.client.upload_file(str(local_path), self.bucket, object_key, Config=self._transfer)

    # --- reading -------------------------------------------------------------------------

    def get_to(self, key: str, local_path: str | Path) -> None:
        object_key = self._object_key(key)
        # s3transfer writes beside the target and renames: no half file under local_path.
        with self._translated(key):
            self.client.download_file(
                self.bucket, object_key, str(local_path), Config=self._transfer
            )

    def iter_range(
        self, key: str, first: int = 0, last: int | None = None, chunk_size: int = READ_CHUNK
    ) -> Iterator[bytes]:
        object_key = self._object_key(key)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key}
        if first > 0 or last is not None:
            request["Range"] = f"bytes={first}-{'' if last is None else last}"
        try:
            # Requested now, not at the first next(): a missing key raises before any yield.
            with self._translated(key):
                response = self.client.get_object(**request)
        except ClientError as exc:
            if _error_code(exc) == "InvalidRange" or _http_status(exc) == 416:
                return iter(())  # a range starting at or past the end: no bytes, as locally
            raise
        return self._stream_body(response["Body"], key, chunk_size)

    def _stream_body(self, body: Any, key: str, chunk_size: int) -> Iterator[bytes]:
        # Closing the generator (a client hung up) closes the body and frees the connection.
        try:
            with self._translated(key):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def stat(self, key: str) -> ObjectInfo:
        object_key = self._object_key(key)
        with self._translated(key):
            head = self.client.head_object(Bucket=self.bucket, Key=object_key)
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            etag=head["ETag"],
            modified=head["LastModified"].timestamp(),
        )

    def list_prefix(self, prefix: str) -> list[str]:
        return sorted(self._storage_key(obj["Key"]) for obj in self._objects_under(prefix))

    def _objects_under(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._listing_prefix(prefix)
        )
        with self._translated():
            for page in pages:
                for obj in page.get("Contents", ()):
                    # Some stores list "folder/" markers; Spool never makes such a key.
                    if not obj["Key"].endswith("/"):
                        yield obj

    # --- deleting ------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        with self._translated(key):
            self.client.delete_object(Bucket=self.bucket, Key=object_key)

    def delete_prefix(self, prefix: str) -> int:
        object_keys = [obj["Key"] for obj in self._objects_under(prefix)]
        for start in range(0, len(object_keys), DELETE_BATCH):
            self._delete_batch(object_keys[start : start + DELETE_BATCH])
        return len(object_keys)

    def _delete_batch(self, object_keys: list[str]) -> None:
        with self._translated():
            answer = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in object_keys], "Quiet": True},
            )
        failed = [e for e in answer.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
        if failed:
            first = failed[0]
            raise StorageUnavailable(
                f"{self.describe()}: could not delete {len(failed)} "
                f"objects, e.g. {first.get('Key')!r}: {first.get('Code')}"
            )

    # --- the rest ------------------------------------------------------------------------

    def sweep_abandoned_writes(self, begun_before: float) -> int:
        """Multipart uploads under this store's prefix initiated before ``begun_before`` and
        neither completed nor aborted: the store keeps their parts (and bills them) until
        they are aborted."""
        cutoff = datetime.fromtimestamp(begun_before, UTC)
        swept = 0
        with self._translated():
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, **({"Prefix": f"{self.prefix}/"} if self.prefix else {})
            )
            for page in pages:
                for upload in page.get("Uploads") or ():
                    if upload["Initiated"] >= cutoff:
                        continue
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:
                        if _error_code(exc) != "NoSuchUpload":  # a peer's sweep got there
                            raise
                        continue
                    swept += 1
        return swept

    def presigned_url(self, key: str, seconds: int) -> str | None:
        object_key = self._object_key(key)
        with self._translated(key):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": object_key}, ExpiresIn=seconds
            )

    def check(self) -> None:
        if not self._bucket_exists():
            raise StorageUnavailable(f"{self.describe()}: no such bucket {self.bucket!r}")

    def _bucket_exists(self) -> bool:
        try:
            with self._translated():
                self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:  # what _translated left: a HEAD answer has no error code
            if _http_status(exc) == 404:
                return False
            raise StorageUnavailable(
                f"{self.describe()} refused HeadBucket: "
                f"{_error_code(exc)} (HTTP {_http_status(exc)})"
            ) from exc
        return True

    def ensure_bucket(self) -> None:
        """Create the bucket unless it is there (for the dev stack and the tests)."""
        if self._bucket_exists():
            return
        request: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region not in ("us-east-1", "aws-global"):
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            with self._translated():
                self.client.create_bucket(**request)
        except ClientError as exc:  # created meanwhile by a parallel run: fine
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        endpoint = self.client.meta.endpoint_url or ""
        host = urlsplit(endpoint).hostname or ""
        if host.endswith(".amazonaws.com") or host == "amazonaws.com":
            return f"{where} at AWS ({self.client.meta.region_name})"
        return f"{where} at {endpoint}"
