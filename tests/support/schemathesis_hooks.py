"""Schemathesis hooks for tests/test_openapi.py (``SCHEMATHESIS_HOOKS``): what a client of
the API knows and Schemathesis cannot guess.

JSON lines (``POST /v1/followers/import``): the OpenAPI document gives one line's schema; a
generated value is sent as one line, a list of them as several.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def json_lines(_ctx: Any, value: Any) -> bytes:
    lines = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)
