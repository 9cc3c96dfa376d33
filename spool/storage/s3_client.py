"""The boto3 client of an S3-compatible store, from the settings.

Settings win; anything left unset falls back to boto3's own chain (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL, profiles, instance roles).
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any
from urllib.parse import urlsplit

from boto3.session import Session
from botocore.config import Config

from spool.config import Settings
from spool.storage.base import check_key


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
