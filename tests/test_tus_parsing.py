"""What the upload routes read from headers, and how a direct upload's parts are judged:
pure functions, no server."""

from __future__ import annotations

import base64
import hashlib

import pytest

from api.errors import ApiError
from api.tus import parse_checksum, parse_metadata
from spool.service.direct import part_size_for, parts_problem

pytestmark = pytest.mark.unit

MiB = 1024 * 1024


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_pairs_empty_values_and_utf8():
    header = f"filename {b64('été.mp4')},renditions {b64('720p,360p')},flag"
    assert parse_metadata(header) == {"filename": "été.mp4", "renditions": "720p,360p", "flag": ""}
    assert parse_metadata(None) == {} and parse_metadata("") == {}


@pytest.mark.parametrize(
    "header", ["a !!", f"a {b64('x')},a {b64('y')}", f"bad key {b64('x')}", "k " + "A" * 9000]
)
def test_bad_metadata_is_refused_naming_the_header(header):
    with pytest.raises(ApiError) as refused:
        parse_metadata(header)
    assert refused.value.status == 400 and refused.value.field == "Upload-Metadata"


def test_checksum_sha1_only():
    digest = hashlib.sha1(b"abc").digest()
    assert parse_checksum(f"sha1 {base64.b64encode(digest).decode()}").digest == digest
    assert parse_checksum(None) is None
    for header in ("md5 AAAA", "sha1 notbase64!", f"sha1 {base64.b64encode(b'short').decode()}"):
        with pytest.raises(ApiError) as refused:
            parse_checksum(header)
        assert refused.value.status == 400 and refused.value.field == "Upload-Checksum"


def test_direct_part_sizes_stay_within_the_store_limits():
    assert part_size_for(10 * MiB, 16 * MiB) == 16 * MiB
    assert part_size_for(10 * MiB, 1 * MiB) == 5 * MiB  # S3's floor
    big = 200 * 1024 * MiB  # 200 GiB: 10,000 parts of 16 MiB would not hold it
    assert -(-big // part_size_for(big, 16 * MiB)) <= 10_000


def test_direct_parts_are_judged_against_the_declaration():
    length, size = 12 * MiB, 5 * MiB
    whole = [[1, "a", size], [2, "b", size], [3, "c", 2 * MiB]]
    assert parts_problem(whole, length, size) is None
    assert "missing [2]" in parts_problem([whole[0], whole[2]], length, size)
    assert "not declared [4]" in parts_problem([*whole, [4, "d", 1]], length, size)
    assert "part 3 holds 1 bytes" in parts_problem([*whole[:2], [3, "c", 1]], length, size)
