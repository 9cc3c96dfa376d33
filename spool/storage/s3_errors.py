"""botocore's and boto3's errors as the storage interface's: KeyNotFound for a missing
object, StorageUnavailable (with the store named) for a store that is down, unreachable,
missing its bucket or refusing the credentials; anything else as it was raised."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error

from spool.storage.base import KeyNotFound, StorageUnavailable

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


class Store(Protocol):
    """What an error message names: the store and its bucket."""

    bucket: str

    def describe(self) -> str: ...


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


@contextlib.contextmanager
def translated(store: Store, key: str | None = None) -> Iterator[None]:
    """botocore's errors as the interface's: KeyNotFound or StorageUnavailable."""
    try:
        yield
    except (S3UploadFailedError, RetriesExceededError) as exc:
        # boto3's transfer manager wraps the error that stopped it; judge that one.
        cause = exc.__cause__ or exc.__context__ or getattr(exc, "last_exception", None)
        translation = _translate(store, cause, key) if cause is not None else exc
        if translation is exc or translation is cause:
            raise
        raise translation from exc
    except (BotoCoreError, ClientError, Urllib3Error) as exc:
        translation = _translate(store, exc, key)
        if translation is exc:
            raise
        raise translation from exc


def _translate(store: Store, exc: BaseException, key: str | None) -> BaseException:
    if isinstance(exc, ClientError):
        return _client_error(store, exc, key)
    if isinstance(exc, NoCredentialsError):
        return StorageUnavailable(
            f"{store.describe()}: no S3 credentials (set "
            "SPOOL_S3_ACCESS_KEY_ID or AWS_ACCESS_KEY_ID)"
        )
    if isinstance(exc, (BotoConnectionError, HTTPClientError, Urllib3Error)):
        return StorageUnavailable(f"{store.describe()} is unreachable: {exc}")
    return exc


def _client_error(store: Store, exc: ClientError, key: str | None) -> Exception:
    code, status = error_code(exc), http_status(exc)
    if code in NO_BUCKET_CODES:
        return StorageUnavailable(f"{store.describe()}: no such bucket {store.bucket!r}")
    if code == "NoSuchUpload":  # reaped by a lifecycle rule, or aborted by a peer
        return StorageUnavailable(
            f"{store.describe()}: the multipart upload of {key!r} is gone; write the object again"
        )
    if key is not None and code in NOT_FOUND_CODES:  # "404": a HEAD answer has no body
        return KeyNotFound(f"no object {key!r} in {store.describe()}")
    if code in ACCESS_DENIED_CODES or status == 403:
        return StorageUnavailable(
            f"{store.describe()}: access denied ({code}); check the "
            "credentials and the bucket policy"
        )
    if status >= 500 or code in ("SlowDown", "RequestTimeout", "ServiceUnavailable"):
        return StorageUnavailable(f"{store.describe()} failed: {code} (HTTP {status})")
    return exc
