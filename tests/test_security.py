"""Security protections a user relies on (docs/security.md): request bodies capped while they
stream in (over ASGI and over a real uvicorn), secrets never shown, and byte ranges served as
RFC 9110 says, checked against a reference parser written from the RFC."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api import create_app, gate
from api.media import file_response, parse_range
from api.routes import health
from devstack.proc import free_port, wait_for_port
from spool.config import Settings, redact
from spool.storage import open_storage
from tests.support.api import API_KEY, AUTH, api_client, api_settings, assert_error

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
POST = {"post_id": "capped-1", "author_id": "ada", "title": "Title", "body": "Body"}
JSON_CAP = 64 * 1024
CHUNK = 64 * 1024
CHUNKS = 1024  # 64 MiB offered; a server that stops at the cap takes a few of them


class Offered:
    """A request body of CHUNKS chunks that counts how many the client was asked for."""

    def __init__(self) -> None:
        self.taken = 0

    def chunks(self):
        for _ in range(CHUNKS):
            self.taken += 1
            yield b" " * CHUNK

    async def async_chunks(self):
        for chunk in self.chunks():
            yield chunk


JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


# --- request bodies are capped while they stream in -----------------------------------------


@pytest.mark.orchestration
async def test_json_body_is_refused_mid_stream_and_up_front(client, settings):
    s = api_settings(settings, api_max_json_bytes=JSON_CAP)
    async with api_client(s, client) as http:
        body = Offered()
        r = await http.post("/v1/posts", content=body.async_chunks(), headers=JSON_HEADERS)
        err = assert_error(r, 413)
        assert err["type"] == "too_large" and str(JSON_CAP) in err["message"]
        assert body.taken <= JSON_CAP // CHUNK + 1, body.taken  # stopped at the cap

        # A declared length over the cap: refused before one byte is read.
        body = Offered()
        r = await http.post(
            "/v1/posts",
            content=body.async_chunks(),
            headers={**JSON_HEADERS, "Content-Length": str(CHUNK * CHUNKS)},
        )
        assert_error(r, 413)
        assert body.taken == 0

        # Under the cap, the same endpoint works; a refused body left nothing behind.
        fits = await http.post("/v1/posts", json=POST, headers=AUTH)
        assert fits.status_code == 202, fits.text


@pytest.mark.orchestration
async def test_the_video_upload_keeps_its_own_larger_cap(client, settings):
    # A 200 KB upload passes a 64 KiB JSON cap: uploads are capped by max_upload_bytes.
    s = api_settings(settings, api_max_json_bytes=JSON_CAP, max_upload_bytes=300_000)
    async with api_client(s, client) as http:
        r = await http.post(
            "/v1/videos", headers=AUTH, files={"file": ("a.mp4", b"\0" * 200_000, "video/mp4")}
        )
        assert r.status_code == 202, r.text
        r = await http.post(
            "/v1/videos", headers=AUTH, files={"file": ("a.mp4", b"\0" * 400_000, "video/mp4")}
        )
        assert_error(r, 413, "file")


# --- DNS rebinding: served hosts only, and the page's key only to the page ---------------------

REBINDING = {"Host": "rebind.attacker.example:8000"}


@pytest.mark.orchestration
async def test_a_rebinding_domain_is_refused_and_the_key_goes_only_to_its_own_page(
    client, settings
):
    """A page on a domain that rebinds to 127.0.0.1 is its own origin, but its requests name
    its domain in Host: refused everywhere. The page's key goes only to the page itself."""
    s = api_settings(
        settings,
        api_expose_key_to_localhost=True,
        api_allowed_hosts=["spool.example.com", "*.example.org"],
    )
    async with api_client(s, client) as http:
        for path in ("/v1/config", "/", "/v1/videos", "/healthz", "/metrics"):
            r = await http.get(path, headers=REBINDING)
            assert_error(r, 400, "Host")
            assert API_KEY not in r.text
        for host in (
            "localhost:8000",
            "127.0.0.1",
            "[::1]:8000",
            "spool.example.com",
            "a.example.org",
        ):
            cfg = await http.get("/v1/config", headers={"Host": host})
            assert cfg.json()["api_key"] == API_KEY, host
        for other in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": "http://localhost:8001"},  # another port is another origin
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            cfg = await http.get("/v1/config", headers={"Host": "localhost:8000", **other})
            assert cfg.status_code == 200 and cfg.json()["api_key"] is None, other
        page = {"Origin": "http://localhost:8000", "Sec-Fetch-Site": "same-origin"}
        cfg = await http.get("/v1/config", headers={"Host": "localhost:8000", **page})
        assert cfg.json()["api_key"] == API_KEY


@pytest.mark.parametrize(
    ("host", "allowed", "served"),
    [
        ("localhost:8000", [], True),
        ("127.0.0.1:8000", [], True),
        ("[::1]:8000", [], True),
        ("10.1.2.3", [], True),  # an address literal: no DNS answer stands for it
        ("rebind.attacker.example", [], False),
        ("localhost.attacker.example", [], False),
        ("spool.example.com:443", ["spool.example.com"], True),
        ("SPOOL.Example.COM", ["spool.example.com"], True),
        ("evil-spool.example.com", ["spool.example.com"], False),
        ("a.example.org", ["*.example.org"], True),
        ("example.org", ["*.example.org"], False),
        ("badexample.org", ["*.example.org"], False),
        ("anything.example", ["*"], True),
    ],
)
def test_served_hosts(host, allowed, served):
    assert gate.host_is_served(gate.host_name(host), allowed) is served


# --- the key is checked before a body is read ------------------------------------------------

MEGABYTE_OF_JSON = b'{"post_id": "p", "body": "' + b"x" * (1_000_000 - 30) + b'"}'


async def asgi_request(app, method: str, path: str, headers: dict[str, str], body: bytes):
    """One request straight into the app: (status, response headers, body messages the app
    asked for)."""
    asked: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        asked.append(len(body))
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], dict(start["headers"]), asked


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/v1/posts", "application/json"),
        ("POST", "/v1/videos", "multipart/form-data; boundary=b"),
        ("DELETE", "/v1/videos/some-video/job", "application/json"),
    ],
)
@pytest.mark.orchestration
async def test_a_write_without_its_key_is_refused_before_its_body_is_read(
    client, settings, method, path, content_type
):
    """A 1 MB body without a key: 401, and the app never asked for a byte of it (FastAPI
    parses a route's body before the route's own key check runs)."""
    app = create_app(api_settings(settings), client=client)
    length = str(len(MEGABYTE_OF_JSON))
    async with app.router.lifespan_context(app):
        for auth in ({}, {"Authorization": "Bearer not-the-key"}):
            headers = {"Content-Type": content_type, "Content-Length": length, **auth}
            status, answer, asked = await asgi_request(app, method, path, headers, MEGABYTE_OF_JSON)
            assert (status, asked) == (401, []), (status, asked)
            assert answer[b"www-authenticate"] == b"Bearer"
        # With the key, the body is read (and answered on its merits).
        headers = {"Content-Type": content_type, "Content-Length": length, **AUTH}
        status, _, asked = await asgi_request(app, method, path, headers, MEGABYTE_OF_JSON)
        assert status != 401 and (asked or method == "DELETE"), (status, asked)


def _serve_api(settings: Settings, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "SPOOL_TEMPORAL_ADDRESS": settings.temporal_address,
        "SPOOL_DATA_DIR": str(settings.data_dir),
        "SPOOL_API_HOST": "127.0.0.1",
        "SPOOL_API_PORT": str(port),
        "SPOOL_API_KEYS": f'["{API_KEY}"]',
        "SPOOL_API_MAX_JSON_BYTES": str(JSON_CAP),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.orchestration
async def test_a_real_server_answers_413_before_the_client_has_sent_the_body(settings):
    port = free_port()
    api = _serve_api(settings, port)
    try:
        await asyncio.to_thread(wait_for_port, port, 60, api, "the API")
        url = f"http://127.0.0.1:{port}/v1/posts"

        def post(body, headers) -> httpx.Response:
            return httpx.post(url, content=body, headers=headers, timeout=60)

        body = Offered()
        r = await asyncio.to_thread(post, body.chunks(), JSON_HEADERS)  # chunked: no Content-Length
        assert_error(r, 413)
        # The server stopped reading: most of the 64 MiB was never even produced.
        assert body.taken < CHUNKS // 4, body.taken
        body = Offered()
        r = await asyncio.to_thread(
            post, body.chunks(), {**JSON_HEADERS, "Content-Length": str(CHUNK * CHUNKS)}
        )
        assert_error(r, 413)
        assert body.taken < CHUNKS // 4, body.taken
    finally:
        api.terminate()
        api.wait(30)


# --- secrets are never shown --------------------------------------------------------------------

DB_PASSWORD = "Db-Pa55word-x1"
SECRETS = {
    "SPOOL_WEBHOOK_SECRET": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTAxMjM0NQ==",
    "SPOOL_API_KEYS": '["api-key-one-0123", "api-key-two-4567"]',
    "SPOOL_S3_SECRET_ACCESS_KEY": "s3-secret-key-89ab",
    "SPOOL_TEMPORAL_API_KEY": "temporal-key-cdef",
    "SPOOL_DATABASE_URL": f"postgresql+psycopg://spool:{DB_PASSWORD}@127.0.0.1:1/spool",
    "SPOOL_ELASTICSEARCH_URL": "http://elastic:Es-Pa55word@127.0.0.1:1",
}
SECRET_VALUES = [
    "c2VjcmV0LXNpZ25pbmcta2V5LTAxMjM0NQ",
    "api-key-one-0123",
    "api-key-two-4567",
    "s3-secret-key-89ab",
    "temporal-key-cdef",
    DB_PASSWORD,
    "Es-Pa55word",
]


def assert_no_secret(text: str) -> None:
    for secret in SECRET_VALUES:
        assert secret not in text, f"{secret!r} shown in: {text[:500]}"


def test_settings_never_show_a_secret(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    s = Settings(_env_file=None)
    assert_no_secret(repr(s))
    assert_no_secret(str(s))
    # Still usable where they are needed.
    assert s.webhook_secret_value == SECRETS["SPOOL_WEBHOOK_SECRET"]
    assert s.api_key_values == ["api-key-one-0123", "api-key-two-4567"]
    assert DB_PASSWORD in s.resolved_database_url
    assert_no_secret(redact(f"failed: {s.resolved_database_url} {s.elasticsearch_url}", s))


@pytest.mark.orchestration
async def test_readyz_and_a_failing_database_never_show_a_password(client, settings):
    from sqlalchemy import create_engine, text

    db_url = SECRETS["SPOOL_DATABASE_URL"]
    # The object store's client quotes its endpoint URL, credentials and all, when it fails.
    s = Settings(
        temporal_address=settings.temporal_address,
        data_dir=settings.data_dir,
        api_keys=[API_KEY],
        storage_url="s3://bucket/spool",
        storage_outage_seconds=0,
        s3_endpoint_url="http://admin:Es-Pa55word@127.0.0.1:1",
        s3_access_key_id="AK",
        s3_region="us-east-1",
        s3_secret_access_key="s3-secret-key-89ab",
    )
    app = create_app(s, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as http,
    ):
        services = app.state.services
        services.settings = s.model_copy(update={"database_url": db_url})
        services.engine = create_engine(db_url)  # a server that is not there
        r = await http.get("/readyz")
    assert r.status_code == 503, r.text
    checks = r.json()["checks"]
    assert checks["database"].startswith("error") and checks["storage"].startswith("error")
    assert_no_secret(r.text)
    # The driver's own error, as a log line would carry it.
    engine = create_engine(db_url)
    with pytest.raises(Exception) as err, engine.connect() as conn:  # noqa: B017, PT011
        conn.execute(text("SELECT 1"))
    assert_no_secret(str(err.value))


class FailingIndex:
    """A post index whose ping fails with ``message``; closes like the real ones."""

    def __init__(self, message: str) -> None:
        self.message = message

    def ping(self) -> bool:
        raise RuntimeError(self.message)

    def close(self) -> None:
        pass


@pytest.mark.orchestration
@pytest.mark.parametrize("secret", [DB_PASSWORD, "temporal-key-cdef"])
async def test_readyz_redacts_before_it_cuts_a_secret_at_the_limit(client, settings, secret):
    """An error whose secret straddles the cut: cut first, its first part would show."""
    s = api_settings(settings)
    shown_with = {"database_url": SECRETS["SPOOL_DATABASE_URL"], "temporal_api_key": secret}
    prefix = "error: RuntimeError: "
    quoted = SECRETS["SPOOL_DATABASE_URL"] if secret == DB_PASSWORD else f"key={secret}"
    at = quoted.index(secret) + len(secret) // 2  # this much of the quote fits before the cut
    message = "x" * (health.SHOWN_ERROR_CHARS - len(prefix) - at) + quoted + " and more"
    assert len(prefix + message) > health.SHOWN_ERROR_CHARS
    assert (prefix + message)[: health.SHOWN_ERROR_CHARS].endswith(secret[: len(secret) // 2])
    app = create_app(s, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as http,
    ):
        app.state.services.index = FailingIndex(message)
        app.state.services.settings = s.model_copy(update=shown_with)
        r = await http.get("/readyz")
    shown = r.json()["checks"]["index"]
    assert r.status_code == 503 and shown.startswith(prefix + "xxx"), shown
    assert len(shown) <= health.SHOWN_ERROR_CHARS
    assert secret[: len(secret) // 2] not in shown and "***" in shown, shown


# --- byte ranges: RFC 9110 ---------------------------------------------------------------------

WHOLE = "whole"
UNSATISFIABLE = 416
DIGITS = "0123456789"
TCHAR = set("!#$%&'*+-.^_`|~" + DIGITS + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def number(digits: str) -> int:
    """Any length of digits (Python refuses int() of more than 4300 by default)."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return int(digits)
    finally:
        sys.set_int_max_str_digits(previous)


def reference_range(header: str, size: int):
    """RFC 9110 14.1.2 and 14.1.1 read literally, character by character: WHOLE (ignore the
    header), UNSATISFIABLE (416) or (first, last). Policy choices Spool makes and the RFC
    allows: several ranges are answered whole, and so is a satisfiable suffix of an empty
    file (no byte to name in a Content-Range)."""
    header = header.strip(" \t")
    if "=" not in header:
        return WHOLE
    unit, rest = header[: header.index("=")], header[header.index("=") + 1 :]
    if not unit or any(ch not in TCHAR for ch in unit) or unit.lower() != "bytes":
        return WHOLE
    elements = [e.strip(" \t") for e in rest.split(",")]  # 5.6.1: empty elements allowed
    specs = []
    for element in (e for e in elements if e):
        if element.count("-") != 1:
            return WHOLE
        left, right = element.split("-")
        if any(ch not in DIGITS for ch in left + right) or not (left or right):
            return WHOLE
        if left and right and number(right) < number(left):
            return WHOLE  # invalid int-range: the header is ignored
        specs.append((number(left) if left else None, number(right) if right else None))
    if len(specs) != 1:
        return WHOLE
    first, last = specs[0]
    if first is None:  # suffix-range
        if last == 0:
            return UNSATISFIABLE
        return WHOLE if size == 0 else (max(0, size - last), size - 1)
    if first >= size:
        return UNSATISFIABLE
    return first, size - 1 if last is None else min(last, size - 1)


def spool_range(header: str, size: int):
    from api.errors import ApiError

    try:
        span = parse_range(header, size)
    except ApiError as exc:
        assert exc.status == 416 and exc.headers["Content-Range"] == f"bytes */{size}"
        return UNSATISFIABLE
    return WHOLE if span is None else span


numbers = st.one_of(st.integers(0, 120), st.integers(0, 10**25)).map(str)
range_spec = st.one_of(
    st.tuples(numbers, st.just("-"), numbers | st.just("")),
    st.tuples(st.just(""), st.just("-"), numbers),
).map("".join)
ows = st.sampled_from(["", " ", "\t", "  "])
structured = st.builds(
    lambda unit, specs, pads: (
        unit + "=" + ",".join(f"{p}{s}{p}" for s, p in zip(specs, pads, strict=False))
    ),
    st.sampled_from(["bytes", "Bytes", "BYTES", "items", "bytes ", "", "by tes"]),
    st.lists(
        range_spec | st.just("") | st.sampled_from(["5 - 9", "-", "x-1", "\u0661-\u0662"]),
        min_size=1,
        max_size=4,
    ),
    st.lists(ows, min_size=4, max_size=4),
)
anything = st.text(alphabet="bytes=-, \t0123456789x\u0661", max_size=30)


@hypothesis_settings(max_examples=3000, deadline=None)
@given(st.one_of(structured, anything), st.integers(0, 200))
def test_parse_range_agrees_with_the_rfc(header, size):
    assert spool_range(header, size) == reference_range(header, size), (header, size)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=-50", 10, (0, 9)),  # a suffix longer than the file is the whole file, as a range
        ("bytes=5-", 10, (5, 9)),
        ("bytes=0-4,6-8", 10, WHOLE),  # several ranges: answered with the whole file
        ("bytes=0-4,", 10, (0, 4)),  # an empty list element is not a second range
        ("bytes=0-4, 6-8", 10, WHOLE),
        ("Bytes=2-3", 10, (2, 3)),  # the unit is case-insensitive
        ("items=0-4", 10, WHOLE),  # another unit: ignored
        ("bytes=4-2", 10, WHOLE),  # invalid: ignored
        ("bytes=1 - 2", 10, WHOLE),  # no whitespace inside a range
        ("bytes=\u0661-\u0662", 10, WHOLE),  # digits are ASCII
        ("bytes=10-", 10, UNSATISFIABLE),
        ("bytes=-0", 10, UNSATISFIABLE),
        ("bytes=" + "9" * 5000 + "-", 10, UNSATISFIABLE),  # no int() of 5000 digits
        ("bytes=0-" + "9" * 5000, 10, (0, 9)),
        ("bytes=0-0", 0, UNSATISFIABLE),
    ],
)
def test_range_edge_cases(header, size, expected):
    assert spool_range(header, size) == expected == reference_range(header, size)


@pytest.fixture
def media_app(tmp_path):
    """A stored 100-byte object served by api.media.file_response, last modified an hour ago."""
    s = Settings(data_dir=tmp_path / "data")
    storage = open_storage(s)
    pending = storage.begin_write("media/file.bin")
    pending.write(bytes(range(100)))
    pending.commit()
    stored = next(p for p in s.resolved_storage_dir.rglob("*") if p.is_file())
    an_hour_ago = time.time() - 3600
    os.utime(stored, (an_hour_ago, an_hour_ago))
    app = FastAPI()

    @app.get("/file")
    async def serve(request: Request):
        return await file_response(request, storage, "media/file.bin")

    return app, formatdate(int(an_hour_ago), usegmt=True)


async def test_if_range_with_a_date_and_with_entity_tags(media_app):
    app, modified = media_app
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        whole = await http.get("/file")
        assert whole.status_code == 200 and whole.headers["last-modified"] == modified
        etag = whole.headers["etag"]

        async def get(**headers: str) -> httpx.Response:
            return await http.get("/file", headers={"Range": "bytes=10-19", **headers})

        for validator in (modified, etag):  # still this version: the range
            r = await get(**{"If-Range": validator})
            assert r.status_code == 206 and r.content == bytes(range(10, 20)), validator
        older = formatdate(int(time.time()) - 7200, usegmt=True)
        for validator in (older, f"W/{etag}", '"another-version"', "not a date"):
            r = await get(**{"If-Range": validator})
            assert r.status_code == 200 and len(r.content) == 100, validator
        multi = await http.get("/file", headers={"Range": "bytes=0-1,5-6"})
        assert multi.status_code == 200 and multi.content == bytes(range(100))
        tail = await http.get("/file", headers={"Range": "bytes=-500"})
        assert tail.status_code == 206 and tail.headers["content-range"] == "bytes 0-99/100"


# --- children of the stack die with their parent, with no Python between fork and exec ------

STARTER = """
import sys
from pathlib import Path
from devstack.proc import start_process
proc = start_process(["sleep", "600"], Path(sys.argv[1]))
print(proc.pid, flush=True)
sys.stdin.read()  # until the test kills this process
"""


def test_a_stack_child_dies_with_the_process_that_started_it(tmp_path):
    helper = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "sleep.log")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        child = int(helper.stdout.readline())
        deadline = time.monotonic() + 60
        while _command(child) != b"sleep":  # setpriv execs into it: the pid stays the same
            assert time.monotonic() < deadline, _command(child)
            time.sleep(0.05)
        helper.kill()
        helper.wait(30)
        deadline = time.monotonic() + 60
        while _alive(child):
            assert time.monotonic() < deadline, "the child outlived the process that started it"
            time.sleep(0.1)
    finally:
        helper.kill()
        helper.wait(30)
        if _alive(child):
            os.kill(child, 9)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _command(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().split(b"\0")[0]
