"""Fetching a video from a URL into a local file: the ingest of ``source_url`` (docs/pipelines.md).

The URL is as untrusted as a webhook destination, so it passes the webhooks' guard
(spool/webhooks.py): every address it resolves to is checked, the request connects to the
checked address itself (``pinned_request``), and each redirect is checked again before it is
followed. The body is read with HTTP ranges: a dropped connection resumes at the first byte
not yet written, and a retried attempt resumes from the bytes its heartbeat reported.

Bounds: a declared length above ``max_upload_bytes`` is refused before a byte is read, a body
growing past it is cut; a read waiting longer than ``source_fetch_idle_seconds`` counts as a
dropped connection, and the whole fetch ends by ``source_fetch_deadline_seconds`` however the
server paces its bytes (a slow drip). Errors name the URL by scheme and host only
(``shown_url``): a signed URL carries its token in the query.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urljoin

import httpx

from spool import webhooks
from spool.config import Settings

MAX_REDIRECTS = 5
# Dropped connections in a row without a byte written in between before the attempt gives up
# (and the step retries, resuming from its heartbeat).
MAX_RESUMES_WITHOUT_PROGRESS = 3
GONE = (404, 410)
RETRYABLE_4XX = (408, 425, 429)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class FetchRefused(ValueError):
    """The URL or its answer is bad input: never retried; the message says why."""


class FetchFailed(RuntimeError):
    """The server could not be read now (retry later, resuming)."""


class _Dropped(Exception):
    """The connection ended before the body did: resume with a range."""


@dataclass
class Fetched:
    bytes: int
    content_type: str | None


@dataclass
class _Progress:
    written: int
    total: int | None = None
    etag: str | None = None


def shown(url: str) -> str:
    return webhooks.shown_url(url)


async def fetch_to_file(
    settings: Settings, url: str, path: Path, *, start: int, on_bytes: Callable[[int], None]
) -> Fetched:
    """The body at ``url`` written to ``path`` (its first ``start`` bytes kept: they were
    fetched before); ``on_bytes`` hears the bytes written so far. FetchRefused or FetchFailed."""
    try:
        async with asyncio.timeout(settings.source_fetch_deadline_seconds):
            return await _fetch(settings, url, path, start, on_bytes)
    except TimeoutError:
        raise FetchRefused(
            f"{shown(url)} did not send the whole file within "
            f"{settings.source_fetch_deadline_seconds:g} s (SPOOL_SOURCE_FETCH_DEADLINE_SECONDS)"
        ) from None


async def _fetch(
    settings: Settings, url: str, path: Path, start: int, on_bytes: Callable[[int], None]
) -> Fetched:
    progress = _Progress(written=start)
    timeout = httpx.Timeout(settings.source_fetch_idle_seconds)
    resumes = 0
    out = await asyncio.to_thread(_opened_part, path, start)
    with out:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as c:
            while True:
                before = progress.written
                try:
                    return await _one_request(settings, c, url, out, progress, on_bytes)
                except _Dropped as exc:
                    resumes = 0 if progress.written > before else resumes + 1
                    if resumes > MAX_RESUMES_WITHOUT_PROGRESS:
                        raise FetchFailed(
                            f"{shown(url)}: the connection dropped {resumes} times in a row "
                            f"at byte {progress.written:,}: {exc}"
                        ) from None


async def _one_request(
    settings: Settings,
    client: httpx.AsyncClient,
    url: str,
    out: IO[bytes],
    progress: _Progress,
    on_bytes: Callable[[int], None],
) -> Fetched:
    """One GET from ``progress.written`` on, redirects checked and followed; _Dropped when the
    connection ends early."""
    headers = {"accept-encoding": "identity", "user-agent": "Spool-Ingest/1"}
    if progress.written:
        headers["range"] = f"bytes={progress.written}-"
        if progress.etag:
            headers["if-range"] = progress.etag
    try:
        async with _Opened(settings, client, url, headers) as response:
            _accept_status(url, response, progress, settings.max_upload_bytes)
            if response.status_code == 416:
                return Fetched(progress.written, response.headers.get("content-type"))
            await _read_body(url, response, out, progress, settings.max_upload_bytes, on_bytes)
            return Fetched(progress.written, response.headers.get("content-type"))
    except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            raise FetchFailed(f"{shown(url)}: could not connect ({type(exc).__name__})") from None
        raise _Dropped(type(exc).__name__) from None


def _opened_part(path: Path, keep: int) -> IO[bytes]:
    """The partial file, open for writing after its first ``keep`` bytes."""
    out = path.open("r+b" if path.exists() else "wb")
    out.truncate(keep)
    return out


class _Opened:
    """The answer to a GET of ``url`` after at most MAX_REDIRECTS redirects, each hop's
    destination checked by the webhooks' guard and connected to at the checked address."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient, url: str, headers) -> None:
        self.settings, self.client, self.url, self.headers = settings, client, url, headers
        self.response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._send(url)
            location = response.headers.get("location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                self.response = response
                return response
            await response.aclose()
            url = urljoin(url, location)
        raise FetchRefused(f"{shown(self.url)} redirected more than {MAX_REDIRECTS} times")

    async def _send(self, url: str) -> httpx.Response:
        try:
            dest = await asyncio.to_thread(webhooks.check_destination, self.settings, url)
        except webhooks.WebhookRefused as exc:
            raise FetchRefused(f"source_url {shown(url)}: {exc}") from None
        target, pin_headers, extensions = webhooks.pinned_request(url, dest)
        request = self.client.build_request(
            "GET", target, headers={**self.headers, **pin_headers}, extensions=extensions
        )
        return await self.client.send(request, stream=True)

    async def __aexit__(self, *exc: object) -> None:
        if self.response is not None:
            await self.response.aclose()


def _accept_status(url: str, r: httpx.Response, progress: _Progress, max_bytes: int) -> None:
    """Refuse, retry or accept the answer; where it starts is set on ``progress``."""
    code = r.status_code
    if code in GONE:
        raise FetchRefused(f"{shown(url)} answered HTTP {code}: there is no file at this URL")
    if code == 416 and progress.written and progress.written == progress.total:
        return  # every byte was written before the connection dropped
    if code >= 500 or code in RETRYABLE_4XX:
        raise FetchFailed(f"{shown(url)} answered HTTP {code}")
    if code not in (200, 206):
        raise FetchRefused(f"{shown(url)} answered HTTP {code}, not the file")
    begins, total = _extent(r, code)
    if begins != progress.written:  # a whole body (or a range that is not ours): start over
        progress.written = 0
    progress.total = total
    progress.etag = progress.etag or _strong_etag(r)
    if total is not None and total > max_bytes:
        raise FetchRefused(
            f"{shown(url)} declares {total:,} bytes; the limit is {max_bytes:,} "
            "(SPOOL_MAX_UPLOAD_BYTES)"
        )


def _extent(r: httpx.Response, code: int) -> tuple[int, int | None]:
    """Where the answer's body starts in the file, and the file's length if it says."""
    if code == 206:
        m = _CONTENT_RANGE.fullmatch(r.headers.get("content-range", "").strip())
        if not m:
            raise FetchFailed("a partial answer without a valid Content-Range")
        return int(m[1]), None if m[3] == "*" else int(m[3])
    length = r.headers.get("content-length", "")
    return 0, int(length) if length.isdigit() else None


def _strong_etag(r: httpx.Response) -> str | None:
    etag = r.headers.get("etag")
    return etag if etag and not etag.startswith("W/") else None


async def _read_body(
    url: str,
    r: httpx.Response,
    out: IO[bytes],
    progress: _Progress,
    max_bytes: int,
    on_bytes: Callable[[int], None],
) -> None:
    out.seek(progress.written)
    out.truncate(progress.written)
    # Unchunked: each piece is written as it arrives, so a drop loses nothing read so far.
    async for chunk in r.aiter_raw():
        if progress.written + len(chunk) > max_bytes:
            raise FetchRefused(
                f"{shown(url)} sent more than {max_bytes:,} bytes, the limit "
                "(SPOOL_MAX_UPLOAD_BYTES); the fetch was cut there"
            )
        await asyncio.to_thread(out.write, chunk)
        progress.written += len(chunk)
        on_bytes(progress.written)
    if progress.total is not None and progress.written < progress.total:
        raise _Dropped(f"the body ended at byte {progress.written:,} of {progress.total:,}")
    if progress.written == 0:
        raise FetchRefused(f"{shown(url)} answered with an empty body")
