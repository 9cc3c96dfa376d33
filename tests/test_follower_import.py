"""POST /v1/followers/import: a migration's follows as JSON lines, stored while the body
streams in; a bad line is named after the lines before it are stored, and sending an import
again stores nothing twice."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.support.api import AUTH, api_client, api_settings, assert_error

pytestmark = pytest.mark.orchestration

NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}


def follow_lines(author: str, count: int, start: int = 0) -> list[bytes]:
    return [
        json.dumps({"author_id": author, "follower_id": f"f{i:06d}"}).encode() + b"\n"
        for i in range(start, start + count)
    ]


async def in_odd_pieces(lines: list[bytes], size: int = 997) -> AsyncIterator[bytes]:
    """The body in pieces that cut lines anywhere, as a network delivers them."""
    body = b"".join(lines)
    for at in range(0, len(body), size):
        yield body[at : at + size]


async def followers_of(http, author: str) -> list[str]:
    found, cursor = [], None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = (await http.get(f"/v1/authors/{author}/followers", params=params)).json()
        found += page["followers"]
        cursor = page.get("next_cursor")
        if cursor is None:
            return found


async def test_an_import_streams_in_pieces_across_chunks_and_a_repeat_stores_nothing_twice(
    client, settings
):
    author = f"ada-{uuid.uuid4().hex[:8]}"
    lines = follow_lines(author, 12_000)  # more than two of the store's chunks
    lines.insert(5, b"\n")  # a blank line is skipped, still counted
    async with api_client(api_settings(settings), client) as http:
        first = await http.post(
            "/v1/followers/import", headers=NDJSON, content=in_odd_pieces(lines)
        )
        assert first.status_code == 200, first.text
        assert first.json() == {"lines": 12_001, "follows": 12_000, "created": 12_000}
        again = await http.post(
            "/v1/followers/import", headers=NDJSON, content=in_odd_pieces(lines, 4096)
        )
        assert again.json() == {"lines": 12_001, "follows": 12_000, "created": 0}
        assert await followers_of(http, author) == [f"f{i:06d}" for i in range(12_000)]


async def test_a_bad_line_is_named_after_the_lines_before_it_are_stored(client, settings):
    author = f"ada-{uuid.uuid4().hex[:8]}"
    bad = json.dumps({"author_id": author, "follower_id": "x" * 201}).encode() + b"\n"
    lines = [*follow_lines(author, 7_002), bad, *follow_lines(author, 10, start=7_002)]
    async with api_client(api_settings(settings), client) as http:
        refused = await http.post(
            "/v1/followers/import", headers=NDJSON, content=in_odd_pieces(lines)
        )
        error = assert_error(refused, 422, "follower_id")
        assert "line 7003" in error["message"]
        assert "7002 follows before it are stored" in error["message"]
        assert await followers_of(http, author) == [f"f{i:06d}" for i in range(7_002)]
        # The rest sent again from the fixed line: the import is whole.
        rest = [
            json.dumps({"author_id": author, "follower_id": "fixed"}).encode() + b"\n",
            *follow_lines(author, 10, start=7_002),
        ]
        done = await http.post("/v1/followers/import", headers=NDJSON, content=b"".join(rest))
        assert done.json() == {"lines": 11, "follows": 11, "created": 11}
        assert len(await followers_of(http, author)) == 7_013


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"author_id": "a", "follower_id": "b"}\nnot json\n', "line 2: line: is not JSON"),
        (b'["a", "b"]\n', "line 1: line: must be a JSON object"),
        (b'{"author_id": "a", "follower": "b"}\n', "line 1: follower: is not a known field"),
        (b'{"author_id": "a", "follower_id": "b\xff"}\n', "line 1: line: is not UTF-8"),
        (b'{"author_id": "' + b"a" * 5000, "line 1: line: is over 4096 bytes"),
    ],
    ids=["not-json", "not-an-object", "unknown-field", "not-utf8", "endless-line"],
)
async def test_each_kind_of_bad_line_is_refused_by_name(client, settings, body, named):
    async with api_client(api_settings(settings), client) as http:
        refused = await http.post("/v1/followers/import", headers=NDJSON, content=body)
        assert named in assert_error(refused, 422)["message"]


async def test_the_key_the_type_and_the_size_are_checked(client, settings):
    line = b'{"author_id": "a", "follower_id": "b"}\n'
    async with api_client(api_settings(settings, api_max_import_bytes=100), client) as http:
        assert_error(await http.post("/v1/followers/import", content=line), 401)
        wrong = await http.post(
            "/v1/followers/import",
            headers={**AUTH, "Content-Type": "application/json"},
            content=line,
        )
        assert "JSON lines" in assert_error(wrong, 415)["message"]
        big = await http.post("/v1/followers/import", headers=NDJSON, content=line * 3)
        assert "several requests" in assert_error(big, 413)["message"]
        fits = await http.post("/v1/followers/import", headers=NDJSON, content=line * 2)
        assert fits.json() == {"lines": 2, "follows": 2, "created": 1}
