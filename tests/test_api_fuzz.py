"""Schemathesis fuzzes the OpenAPI spec in-process (ASGI, no network): no input is a 5xx.

The app runs its own lifespan inside schemathesis' ASGI transport (its Temporal client
connects there); requests carry a valid key so write endpoints are exercised past auth.
"""

from __future__ import annotations

import collections
import itertools
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

import tests.support.schemathesis_hooks  # noqa: F401 - how JSON lines are sent
from api import create_app
from tests.support.api import API_KEY

pytestmark = pytest.mark.orchestration

MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def fuzz_app(temporal_server, tmp_path_factory):
    from spool.config import Settings

    # A queue of its own that no worker polls: jobs the fuzzer starts stay put, and none of
    # them lands on another run's queue (every test uses a fresh task queue, README "Tests").
    queue = f"fuzz-no-worker-{uuid.uuid4().hex[:12]}"
    s = Settings(
        temporal_address=temporal_server.address,
        data_dir=tmp_path_factory.mktemp("fuzz") / "data",
        queue_pipeline=queue,
        queue_media=queue,
        queue_captions=queue,
        api_keys=[API_KEY],
        max_upload_bytes=64 * 1024,
        api_allowed_hosts=["testserver"],  # the name schemathesis's ASGI client sends
    )
    return create_app(s)


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def test_no_server_errors(fuzz_schema):
    # schemathesis' own pytest plugin does not run under this pytest; drive Hypothesis directly.
    failures: list[str] = []
    seen: list[tuple[str, str, int]] = []
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation, mode in itertools.product(operations, list(GenerationMode)):

        @given(case=operation.as_strategy(generation_mode=mode))
        @hyp_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {API_KEY}"})
            seen.append((case.method, case.path, response.status_code))
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: "
                    f"{response.status_code} {response.text[:200]}"
                )
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Unsatisfiable:
            # No way to make a wrong request to this operation (e.g. no parameters at all).
            assert mode == GenerationMode.NEGATIVE, operation.label
    assert not failures, failures
    print(sorted(collections.Counter(seen).items()))
    # The fuzz must get past auth and validation for writes, not only bounce off them.
    assert any(m == "POST" and p == "/v1/posts" and c == 202 for m, p, c in seen)
