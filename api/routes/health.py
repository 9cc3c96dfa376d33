"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import Services, services
from spool.config import redact
from spool.search import PostIndex

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 3.0
SHOWN_ERROR_CHARS = 300  # of each failing check's error


class Alive(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


@router.get("/healthz", response_model=Alive)
async def healthz() -> Alive:
    """The process is up (no dependencies checked)."""
    return Alive()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "a dependency is unreachable; `checks` says which"}
    },
)
async def readyz(svc: Services = Depends(services)) -> JSONResponse:
    """Temporal, the database, the post index and object storage all answer."""
    checks = await asyncio.gather(
        _check_temporal(svc), _check_db(svc), _check_index(svc), _check_storage(svc)
    )
    # A driver's error may quote its URL or credentials: /readyz is public.
    results = {
        name: redact(check, svc.settings, limit=SHOWN_ERROR_CHARS)
        for name, check in zip(("temporal", "database", "index", "storage"), checks, strict=True)
    }
    ok = all(v == "ok" for v in results.values())
    body = Readiness(status="ready" if ok else "unavailable", checks=results)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


async def _timed(coro: Any) -> str:
    try:
        await asyncio.wait_for(coro, READY_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"error: {type(exc).__name__}: {exc}"  # cut by readyz, after redaction
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
