"""Object storage in any S3-compatible store: AWS S3, R2, SeaweedFS, Ceph, S3Proxy.

Atomicity comes from S3 itself: a PUT or a completed multipart upload becomes visible whole
under its key, and an upload that is never completed (or is aborted) leaves no object.
The client and its settings are in ``s3_client``, objects written in parts in
``s3_multipart``, the store's errors as the interface's in ``s3_errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from spool.config import Settings
from spool.storage.base import (
    READ_CHUNK,
    ObjectInfo,
    ObjectStorage,
    PendingObject,
    StorageUnavailable,
    check_key,
    check_prefix,
)
from spool.storage.s3_client import make_client, parse_storage_url
from spool.storage.s3_errors import error_code, http_status, translated
from spool.storage.s3_multipart import MIN_PART_BYTES, MultipartPending

DELETE_BATCH = 1000  # S3's ceiling for one DeleteObjects call
# Uploads of a put_file run in this many threads; memory is about this many parts.
TRANSFER_THREADS = 2


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

    # --- writing -------------------------------------------------------------------------

    def begin_write(self, key: str) -> PendingObject:
        return MultipartPending(self, key, self._object_key(key))

    def put_file(self, local_path: str | Path, key: str) -> None:
        object_key = self._object_key(key)
        with translated(self, key):
            self.client.upload_file(str(local_path), self.bucket, object_key, Config=self._transfer)

    # --- reading -------------------------------------------------------------------------

    def get_to(self, key: str, local_path: str | Path) -> None:
        object_key = self._object_key(key)
        # s3transfer writes beside the target and renames: no half file under local_path.
        with translated(self, key):
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
            with translated(self, key):
                response = self.client.get_object(**request)
        except ClientError as exc:
            if error_code(exc) == "InvalidRange" or http_status(exc) == 416:
                return iter(())  # a range starting at or past the end: no bytes, as locally
            raise
        return self._stream_body(response["Body"], key, chunk_size)

    def _stream_body(self, body: Any, key: str, chunk_size: int) -> Iterator[bytes]:
        # Closing the generator (a client hung up) closes the body and frees the connection.
        try:
            with translated(self, key):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def stat(self, key: str) -> ObjectInfo:
        object_key = self._object_key(key)
        with translated(self, key):
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
        with translated(self):
            for page in pages:
                for obj in page.get("Contents", ()):
                    # Some stores list "folder/" markers; Spool never makes such a key.
                    if not obj["Key"].endswith("/"):
                        yield obj

    # --- deleting ------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        with translated(self, key):
            self.client.delete_object(Bucket=self.bucket, Key=object_key)

    def delete_prefix(self, prefix: str) -> int:
        """A page of the listing at a time (up to 1000 keys, one DeleteObjects each): memory
        stays flat however many segments a video has."""
        deleted, batch = 0, []
        for obj in self._objects_under(prefix):
            batch.append(obj["Key"])
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                deleted, batch = deleted + len(batch), []
        if batch:
            self._delete_batch(batch)
        return deleted + len(batch)

    def abort_writes_under(self, prefix: str) -> int:
        """Every unfinished multipart upload to a key under ``prefix``, whatever its age."""
        return self._abort_uploads(Prefix=self._listing_prefix(prefix))

    def _delete_batch(self, object_keys: list[str]) -> None:
        with translated(self):
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
        return self._abort_uploads(
            begun_before=cutoff, **({"Prefix": f"{self.prefix}/"} if self.prefix else {})
        )

    def _abort_uploads(self, begun_before: datetime | None = None, **listing: Any) -> int:
        """Abort the multipart uploads the listing finds (initiated before ``begun_before``,
        if given); how many this call aborted."""
        swept = 0
        with translated(self):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, **listing
            )
            for page in pages:
                for upload in page.get("Uploads") or ():
                    if begun_before is not None and upload["Initiated"] >= begun_before:
                        continue
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:
                        if error_code(exc) != "NoSuchUpload":  # a peer's sweep got there
                            raise
                        continue
                    swept += 1
        return swept

    def presigned_url(self, key: str, seconds: int) -> str | None:
        object_key = self._object_key(key)
        with translated(self, key):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": object_key}, ExpiresIn=seconds
            )

    def check(self) -> None:
        if not self._bucket_exists():
            raise StorageUnavailable(f"{self.describe()}: no such bucket {self.bucket!r}")

    def _bucket_exists(self) -> bool:
        try:
            with translated(self):
                self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:  # what translated() left: a HEAD answer has no error code
            if http_status(exc) == 404:
                return False
            raise StorageUnavailable(
                f"{self.describe()} refused HeadBucket: {error_code(exc)} (HTTP {http_status(exc)})"
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
            with translated(self):
                self.client.create_bucket(**request)
        except ClientError as exc:  # created meanwhile by a parallel run: fine
            if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        endpoint = self.client.meta.endpoint_url or ""
        host = urlsplit(endpoint).hostname or ""
        if host.endswith(".amazonaws.com") or host == "amazonaws.com":
            return f"{where} at AWS ({self.client.meta.region_name})"
        return f"{where} at {endpoint}"
