"""What route handlers depend on: the services of the running app, and the key checks.

The app's lifespan (api/app.py) builds one :class:`Services` per app; routes reach it, and
Temporal, only through :func:`services`. Writes need ``Authorization: Bearer <key>`` with a
key from settings.api_keys; reads are public when settings.public_reads. Route modules import
this module, never api.app, so nothing imports in a circle.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.errors import ApiError
from api.grants import grant_problem, granted
from spool.config import Settings, reveal
from spool.search import PostIndex
from spool.service import PostService, VideoService
from spool.storage import ObjectStorage


@dataclass
class Services:
    settings: Settings
    client: Client
    engine: Engine
    storage: ObjectStorage
    index: PostIndex
    videos: VideoService
    posts: PostService
    # What read grants are made and checked against (api/grants.py); a test moves it on.
    clock: Callable[[], float] = time.time


def build_services(
    settings: Settings, client: Client, engine: Engine, storage: ObjectStorage, index: PostIndex
) -> Services:
    return Services(
        settings,
        client,
        engine,
        storage,
        index,
        videos=VideoService(client, engine),
        posts=PostService(client, settings, engine, index),
    )


async def services(request: Request) -> Services:
    return request.app.state.services


# Declares the scheme in /openapi.json (and the "Authorize" button of /docs); the checks and
# their error answers are require_key's own.
_bearer = HTTPBearer(auto_error=False, description="an API key from SPOOL_API_KEYS")


def _key_ok(settings: Settings, key: str) -> bool:
    presented = key.encode()
    ok = False
    for valid in settings.api_key_values:  # compare with every key: timing says nothing of which
        ok |= hmac.compare_digest(presented, valid.encode())
    return ok


def key_problem(settings: Settings, authorization: str) -> str | None:
    """Why an ``Authorization`` header does not open a write (a 401's message), or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "missing API key: send 'Authorization: Bearer <key>'"
    if not _key_ok(settings, token.strip()):
        return "invalid API key"
    return None


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def check_key(request: Request) -> None:
    """401 unless the request carries a valid key."""
    settings: Settings = request.app.state.services.settings
    problem = key_problem(settings, request.headers.get("authorization", ""))
    if problem is not None:
        raise ApiError(401, problem, headers=UNAUTHORIZED_HEADERS)


async def require_key(
    request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    check_key(request)


async def require_read(request: Request) -> None:
    """Reads are public, or need the key; a media file also opens to a read grant of its
    video (api/grants.py)."""
    settings: Settings = request.app.state.services.settings
    if settings.public_reads:
        return
    grant = granted(request.scope)
    if grant is None:
        check_key(request)
        return
    problem = grant_problem(settings, grant, request.app.state.services.clock())
    if problem is not None:
        raise ApiError(401, problem)


async def require_metrics(request: Request) -> None:
    """/metrics: the metrics token when one is configured; else a read like any other."""
    settings: Settings = request.app.state.services.settings
    token = reveal(settings.metrics_token)
    if token:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            raise ApiError(
                401,
                "/metrics needs the metrics token (SPOOL_METRICS_TOKEN): "
                "send 'Authorization: Bearer <token>'",
                headers=dict(UNAUTHORIZED_HEADERS),
            )
    elif not settings.public_reads:
        check_key(request)


# The checks above are async on purpose: FastAPI runs a sync dependency in its worker threads,
# a hop per check per request that gave POST /v1/posts its tail under load (bench/api.py).
WRITE = [Depends(require_key)]
READ = [Depends(require_read)]


def is_loopback_client(request: Request) -> bool:
    """A request from this machine, not relayed by a proxy."""
    if request.headers.get("x-forwarded-for") or request.headers.get("forwarded"):
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "testclient"
