"""The HTTP API in the test process over ASGI, with the test key, and how its answers are
checked."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI

from api import create_app
from spool.config import Settings

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FINAL = {"ready", "ready_with_errors", "failed", "cancelled"}


def api_settings(settings: Settings, **extra) -> Settings:
    """``settings`` with the test key (AUTH) accepted, and ``extra`` fields."""
    return settings.model_copy(update={"api_keys": [API_KEY], **extra})


@contextlib.asynccontextmanager
async def api_app(settings: Settings, client) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """One API process's app (its own lifespan and services) and a client of it."""
    app = create_app(settings, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost", timeout=60
        ) as http,
    ):
        yield app, http


@contextlib.asynccontextmanager
async def api_client(settings: Settings, client) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app for ``settings``, served in this process over ASGI."""
    async with api_app(settings, client) as (_app, http):
        yield http


async def wait_video(
    http: httpx.AsyncClient,
    video_id: str,
    *,
    within: float = 120,
    until=lambda v: v["state"] in FINAL,
    headers: dict | None = None,
) -> dict:
    """The video's view once ``until`` holds of it (by default: a final state)."""
    deadline = time.monotonic() + within
    while True:
        r = await http.get(f"/v1/videos/{video_id}", headers=headers)
        assert r.status_code == 200, r.text
        v = r.json()
        if until(v):
            return v
        assert time.monotonic() < deadline, f"video did not get there in {within}s: {v}"
        await asyncio.sleep(0.3)


def storage_files(settings: Settings) -> list[Path]:
    """Every file in the local object store (none if it was never made)."""
    root = settings.resolved_storage_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_error(r: httpx.Response, status: int, field: str | None = None) -> dict:
    """The error of an answer with ``status`` in the API's one error shape, naming ``field``."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) <= {"type", "message", "field"} and err["type"] and err["message"]
    if field is not None:
        assert err.get("field") == field, err
    return err
