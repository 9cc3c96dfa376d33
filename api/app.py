"""The FastAPI application factory: ``create_app(settings)``.

The Temporal client is connected in the lifespan (or handed in by a test); every request
handler reaches Temporal only through it. Writes need ``Authorization: Bearer <key>`` with a
key from settings.api_keys; reads are public when settings.public_reads.

The web page at ``/`` needs a key to upload and publish. It asks ``GET /v1/config``, which
includes the first configured key only when SPOOL_API_EXPOSE_KEY_TO_LOCALHOST=true and the
request comes from a loopback address without proxy headers (the embedded stack on one
machine); otherwise the person pastes a key ("API key…"), kept in the browser's localStorage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from api.errors import ApiError, install_error_handlers
from api.limits import install_body_limits
from spool.config import Settings, redact
from spool.db import get_engine
from spool.search import PostIndex, open_index
from spool.storage import ObjectStorage, open_storage
from spool.temporal import connect

STATIC = Path(__file__).resolve().parent / "static"
READY_TIMEOUT_SECONDS = 3.0


@dataclass
class Services:
    settings: Settings
    client: Client
    engine: Engine
    storage: ObjectStorage
    index: PostIndex


def services(request: Request) -> Services:
    return request.app.state.services


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _key_ok(settings: Settings, key: str | None) -> bool:
    if key is None:
        return False
    presented = key.encode()
    ok = False
    for valid in settings.api_key_values:  # compare with every key: timing says nothing of which
        ok |= hmac.compare_digest(presented, valid.encode())
    return ok


def require_key(request: Request) -> None:
    settings: Settings = request.app.state.services.settings
    key = _presented_key(request)
    if key is None:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    if not _key_ok(settings, key):
        raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})


def require_read(request: Request) -> None:
    if not request.app.state.services.settings.public_reads:
        require_key(request)


WRITE = [Depends(require_key)]
READ = [Depends(require_read)]


def _is_loopback_client(request: Request) -> bool:
    if request.headers.get("x-forwarded-for") or request.headers.get("forwarded"):
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "testclient"


def create_app(settings: Settings, *, client: Client | None = None) -> FastAPI:
    """The API for one settings object; pass ``client`` to reuse a connected Temporal client."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        temporal = client or await connect(settings, wait_seconds=10)
        engine = await asyncio.to_thread(get_engine, settings)
        storage = open_storage(settings)
        index = await asyncio.to_thread(open_index, settings)
        app.state.services = Services(settings, temporal, engine, storage, index)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(index.close)

    app = FastAPI(title="Spool API", version="1.0.0", lifespan=lifespan,
                  description="Durable video and blog pipelines on Temporal. Writes need "
                              "`Authorization: Bearer <key>`.")
    install_error_handlers(app)
    install_body_limits(app, settings)  # bodies are capped while they stream in

    from api.posts import router as posts_router
    from api.streaming import router as streaming_router
    from api.videos import router as videos_router

    app.include_router(videos_router)
    app.include_router(streaming_router)
    app.include_router(posts_router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up (no dependencies checked)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"],
             responses={503: {"description": "a dependency is unreachable"}})
    async def readyz(svc: Services = Depends(services)) -> JSONResponse:
        """Temporal, the database, the post index and object storage all answer."""
        checks = await asyncio.gather(_check_temporal(svc), _check_db(svc), _check_index(svc),
                                      _check_storage(svc))
        # A driver's error may quote its URL or credentials: /readyz is public.
        results = {name: redact(check, svc.settings) for name, check in zip(
            ("temporal", "database", "index", "storage"), checks, strict=True)}
        ok = all(v == "ok" for v in results.values())
        return JSONResponse({"status": "ready" if ok else "unavailable", "checks": results},
                            status_code=200 if ok else 503)

    @app.get("/v1/config", tags=["page"])
    async def page_config(request: Request) -> dict[str, Any]:
        """What the web page needs. The API key is included only when
        settings.api_expose_key_to_localhost is on and the caller is on this machine."""
        key = None
        if (settings.api_expose_key_to_localhost and settings.api_key_values
                and _is_loopback_client(request)):
            key = settings.api_key_values[0]
        return {"api_key": key, "public_reads": settings.public_reads,
                "max_upload_bytes": settings.max_upload_bytes}

    @app.get("/", include_in_schema=False)
    async def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _timed(coro: Any) -> str:
    try:
        await asyncio.wait_for(coro, READY_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


async def _check_temporal(svc: Services) -> str:
    return await _timed(svc.client.workflow_service.get_system_info(GetSystemInfoRequest()))


def _ping_db(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def _check_db(svc: Services) -> str:
    return await _timed(asyncio.to_thread(_ping_db, svc.engine))


def _ping_index(index: PostIndex) -> None:
    if not index.ping():
        raise RuntimeError("index did not answer")


async def _check_index(svc: Services) -> str:
    return await _timed(asyncio.to_thread(_ping_index, svc.index))


async def _check_storage(svc: Services) -> str:
    return await _timed(asyncio.to_thread(svc.storage.check))
