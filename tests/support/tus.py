"""The tus protocol spoken by hand, over the API served in this process (ASGI: the apps a
test runs at once or one after another are tests/support/api.py's ``api_app``)."""

from __future__ import annotations

import base64
import hashlib

import httpx

from tests.support.api import AUTH

TUS = {"Tus-Resumable": "1.0.0"}
HEADERS = {**AUTH, **TUS}
STREAM = {"Content-Type": "application/offset+octet-stream"}


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


async def create(http: httpx.AsyncClient, length: int, **meta: str) -> httpx.Response:
    headers = {**HEADERS, "Upload-Length": str(length)}
    if meta:
        headers["Upload-Metadata"] = metadata(**meta)
    return await http.post("/v1/uploads", headers=headers)


async def patch(
    http: httpx.AsyncClient, location: str, offset: int, data: bytes, **extra: str
) -> httpx.Response:
    headers = {**HEADERS, **STREAM, "Upload-Offset": str(offset)}
    headers |= {k.replace("_", "-"): v for k, v in extra.items()}
    return await http.patch(location, headers=headers, content=data)


async def offset_of(http: httpx.AsyncClient, location: str) -> int:
    r = await http.head(location, headers=HEADERS)
    assert r.status_code == 200, (r.status_code, r.headers)
    return int(r.headers["Upload-Offset"])


async def upload_whole(
    http: httpx.AsyncClient, data: bytes, pieces: int = 3, **meta: str
) -> httpx.Response:
    """Create, then send ``data`` in ``pieces`` PATCHes; the last answer."""
    created = await create(http, len(data), **meta)
    assert created.status_code == 201, created.text
    location, step = created.headers["Location"], -(-len(data) // pieces)
    answer = created
    for offset in range(0, len(data), step):
        answer = await patch(http, location, offset, data[offset : offset + step])
        assert answer.status_code == 204, answer.text
    return answer
