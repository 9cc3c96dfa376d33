"""The FastAPI application factory: ``create_app(settings)``.

The Temporal client is connected in the lifespan (or handed in by a test) and the services
are built on it (api/deps.py); every route reaches Temporal only through them. Routes live in
api/routes/, one module per resource, and never import this module; keys are checked by
api/deps.py; the page's config is api/routes/page.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from api.deps import build_services, require_metrics
from api.errors import ApiError, install_error_handlers
from api.gate import KeyBeforeBody, ServedHosts
from api.grants import GrantPaths
from api.headers import SecurityHeaders, media_origin, page_policy
from api.limits import install_body_limits
from api.openapi import describe_settings
from api.routes import (
    authors,
    deletions,
    direct_uploads,
    followers,
    health,
    page,
    post_life,
    posts,
    unsubscribe,
    uploads,
    videos,
)
from spool.config import Settings
from spool.db import get_engine
from spool.observability.asgi import instrument_app
from spool.search import open_index
from spool.storage import open_storage
from spool.temporal import connect

STATIC = Path(__file__).resolve().parent / "static"
# The page's hls.js: `make install` (npm ci) in a checkout; the image packs a copy in static/.
HLS_JS = (STATIC.parent.parent / "node_modules/hls.js/dist/hls.min.js", STATIC / "hls.min.js")


def check_settings(settings: Settings) -> None:
    """Refuse settings under which the API could serve nothing, naming them."""
    if not settings.public_reads and not settings.api_key_values:
        raise ValueError(
            "SPOOL_PUBLIC_READS=false needs SPOOL_API_KEYS: with no key nothing "
            "could be read, nor written"
        )


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """What every request passes through, innermost first (the last added runs first)."""
    install_body_limits(app, settings)  # bodies are capped while they stream in
    # ...and not read at all without the key, where a route needs it (api/gate.py)
    app.add_middleware(KeyBeforeBody, settings=settings)
    app.add_middleware(GrantPaths)  # media URLs under a read grant (api/grants.py)
    # /metrics, a trace and a timing per request (docs/observability.md)
    instrument_app(app, dependencies=[Depends(require_metrics)])
    # Only the hosts this API serves: a rebinding domain's requests name theirs (api/gate.py)
    app.add_middleware(ServedHosts, settings=settings)
    # nosniff and no-referrer on every answer, the page's Content-Security-Policy
    app.add_middleware(SecurityHeaders, policy=page_policy(media_origin(settings)))


def include_routers(app: FastAPI) -> None:
    from api.streaming import router as streaming_router

    for router in (
        videos.router,
        direct_uploads.router,  # before uploads': its paths are under /v1/uploads too
        uploads.router,
        uploads.vendor_router,
        deletions.router,
        streaming_router,
        posts.router,
        post_life.router,
        authors.router,
        followers.router,
        unsubscribe.router,
        health.router,
        page.router,
    ):
        app.include_router(router)


def create_app(settings: Settings, *, client: Client | None = None) -> FastAPI:
    """The API for one settings object; pass ``client`` to reuse a connected Temporal client.
    Raises ValueError for settings it could serve nothing under."""
    check_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        temporal = client or await connect(settings, wait_seconds=10)
        engine = await asyncio.to_thread(get_engine, settings)
        storage = open_storage(settings)
        index = await asyncio.to_thread(open_index, settings)
        app.state.services = build_services(settings, temporal, engine, storage, index)
        # The API runs no loop of its own: expired uploads and abandoned writes are swept by
        # Temporal Schedules the workers keep (spool/schedules.py, docs/storage.md).
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(index.close)

    app = FastAPI(
        title="Spool API",
        version="1.0.0",
        lifespan=lifespan,
        description="Durable video and blog pipelines on Temporal. Writes need "
        "`Authorization: Bearer <key>`.",
    )
    install_error_handlers(app)
    install_middleware(app, settings)
    include_routers(app)
    describe_settings(app, settings)  # what /openapi.json says depends on this server's settings

    @app.get("/", include_in_schema=False)
    async def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/vendor/hls.min.js", include_in_schema=False)
    def hls_js() -> FileResponse:  # sync: FastAPI runs it in a thread (it stats files)
        found = next((path for path in HLS_JS if path.is_file()), None)
        if found is None:
            raise ApiError(404, "hls.js is not installed: run `make install` (npm ci)")
        return FileResponse(found, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
