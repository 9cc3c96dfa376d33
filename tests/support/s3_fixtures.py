"""Pytest plugin: one real S3-compatible server (S3Proxy) per test session, started on first use.

Every test that asks for S3 settings gets a bucket of its own, so tests never see each
other's objects or multipart uploads.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from devstack.proc import free_port
from spool.config import Settings
from tests.support.paths import LOGS

LOG_PATH = LOGS / "s3proxy.log"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A running S3ProxyServer with a random key pair, so every request is really signed."""
    from devstack.s3proxy import S3ProxyServer
    from tests.support.services import started

    server = S3ProxyServer(
        tmp_path_factory.mktemp("s3proxy"),
        free_port(),
        LOG_PATH,
        access_key=f"spool-test-{secrets.token_hex(4)}",
        secret_key=secrets.token_urlsafe(24),
    )
    with started(server, "S3Proxy"):
        yield server


def fresh_bucket_name() -> str:
    return f"spool-test-{secrets.token_hex(6)}"


def s3_settings_for(
    server, bucket: str, prefix: str = "spool", base: Settings | None = None, **overrides
) -> Settings:
    """A copy of ``base`` (default: fresh Settings) pointing storage at ``server``."""
    update = {
        "storage_url": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
        "s3_endpoint_url": server.url,
        "s3_region": REGION,
        "s3_access_key_id": server.access_key,
        "s3_secret_access_key": SecretStr(server.secret_key),
        **overrides,
    }
    return (base or Settings(_env_file=None)).model_copy(update=update)


@pytest.fixture
def s3_settings_factory(s3_server) -> Callable[..., Settings]:
    """``make(base=None, prefix="spool", **overrides)`` -> Settings on a new, created bucket."""
    from spool.storage.s3 import S3Storage

    def make(base: Settings | None = None, prefix: str = "spool", **overrides) -> Settings:
        settings = s3_settings_for(s3_server, fresh_bucket_name(), prefix, base, **overrides)
        S3Storage.from_settings(settings).ensure_bucket()
        return settings

    return make


@pytest.fixture
def s3_settings(s3_settings_factory) -> Settings:
    """Settings whose storage is a fresh bucket on the session's S3Proxy."""
    return s3_settings_factory()
