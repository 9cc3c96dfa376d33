"""The OpenAPI document describes every answer of the live API.

Schemathesis' own command line (``st run … -c all``, as an operator would run it) generates
requests for every operation of ``/openapi.json`` served over a real socket by the API on the
real stack (Temporal dev server, database, post index, object storage) and applies all of its
checks: no 5xx, every status code, content type, header and body the spec documents, valid
requests accepted, invalid ones refused, authentication enforced. The run must find nothing.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from api import create_app
from spool.config import Settings
from tests.support.api import API_KEY, api_settings
from tests.support.live_api import live_api
from tests.support.paths import REPO

pytestmark = pytest.mark.orchestration

# Cases per operation and generation phase: enough to reach every documented answer of every
# operation, little enough for about a minute on two shared cores.
EXAMPLES_PER_OPERATION = 30
SEED = 20261127  # the same cases every run: a failure found once is found again
ST_DEADLINE_SECONDS = 600  # a generous bound for a wedged run, never a measure of speed


# A post's publish_at more than a year ahead (and a reschedule's in the past) is refused with
# 422 (issue 19 keeps that answer): a bound that moves with the clock, which no schema can
# state, so a date-time the schema calls valid may be refused by these two operations, with
# 422 (tests/test_post_life.py checks the bounds themselves).
SCHEDULE_BOUND = "".join(
    f"""
[[operations]]
include-operation-id = "{operation}"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "404", "409", "422", "429", "5xx"
]
"""
    for operation in ("publish_post", "reschedule_post")
)


def schemathesis_run(base: str, report: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--no-shrink",
            "--header",
            f"Authorization: Bearer {API_KEY}",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        # Its cache (.schemathesis/) goes to the test's own folder, not the checkout.
        cwd=report.parent,
        capture_output=True,
        text=True,
        timeout=ST_DEADLINE_SECONDS,
        # The one hook: how to send JSON lines, a media type it has no serializer for.
        env={
            "PATH": "/usr/bin:/bin",
            "NO_COLOR": "1",
            "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
            "PYTHONPATH": str(REPO),
        },
    )


async def test_schemathesis_all_checks_find_nothing(client, settings, tmp_path):
    # A queue no worker polls: jobs the run starts stay put and land on no other test's queue.
    queue = f"openapi-no-worker-{uuid.uuid4().hex[:12]}"
    s = api_settings(
        settings,
        queue_pipeline=queue,
        queue_media=queue,
        queue_captions=queue,
        max_upload_bytes=64 * 1024,
    )
    report = tmp_path / "junit.xml"
    (tmp_path / "schemathesis.toml").write_text(SCHEDULE_BOUND)
    async with live_api(s, client) as base:
        result = await asyncio.to_thread(schemathesis_run, base, report)
    output = result.stdout + result.stderr
    summary = output[output.rfind("SUMMARY") :]
    print(summary)
    assert result.returncode == 0, output[-12000:]
    # Every operation of the document was exercised, none filtered out or left untested.
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    tested = re.search(r"Tested: (\d+)", summary)
    assert selected and tested, summary
    assert selected[1] == selected[2] == tested[1] and int(tested[1]) >= 15, summary
    assert report.exists(), output[-2000:]


@pytest.mark.unit
def test_every_operation_documents_its_answers_and_errors_in_one_shape():
    """Each operation has a typed success answer and lists its errors with the one error
    body (api/errors.py), so a client generated from /openapi.json can read every answer."""
    document = create_app(Settings(api_keys=[API_KEY])).openapi()
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    operations = [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    ]
    assert len(operations) >= 15
    for method, path, op in operations:
        label = f"{method} {path}"
        answers = op["responses"]
        success = [code for code in answers if code.startswith("2")]
        assert success, label
        for code in success:
            content = answers[code].get("content") or {}
            assert any(media.get("schema") for media in content.values()), (label, code)
        for code, answer in answers.items():
            if code.startswith(("4", "5")) and path != "/readyz":
                schema = answer["content"]["application/json"]["schema"]
                assert schema == error_body, (label, code)
        if "parameters" in op or "requestBody" in op:
            assert "422" in answers, label  # every parameter or body can be wrong
    writes = {(m, p) for m, p, op in operations if op.get("security")}
    assert writes == {
        ("POST", "/v1/videos"),
        ("POST", "/v1/posts"),
        ("DELETE", "/v1/videos/{video_id}/job"),
        ("DELETE", "/v1/videos/{video_id}"),
        ("PUT", "/v1/authors/{author_id}/followers/{follower_id}"),
        ("DELETE", "/v1/authors/{author_id}/followers/{follower_id}"),
        ("POST", "/v1/followers/import"),
        ("POST", "/v1/posts/{post_id}/unpublish"),
        ("DELETE", "/v1/posts/{post_id}"),
        ("PUT", "/v1/posts/{post_id}/schedule"),
        ("DELETE", "/v1/posts/{post_id}/schedule"),
    }
    assert all("401" in op["responses"] for m, p, op in operations if (m, p) in writes)


@pytest.mark.unit
def test_routes_never_import_the_app():
    """api/app.py includes the route modules; they reach services and auth through
    api/deps.py, so nothing imports in a circle."""
    import ast

    api = Path(__file__).resolve().parent.parent / "api"
    for module in [api / "deps.py", *sorted((api / "routes").glob("*.py"))]:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        imported |= {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert "api.app" not in imported and "api" not in imported, module.name
