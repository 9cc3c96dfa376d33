"""One behavioural suite for every object storage backend: the local directory and S3 (a real
S3Proxy server, signatures checked). What a caller may rely on is the same on both."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devstack.proc import free_port
from spool.config import Settings
from spool.storage import (
    InvalidKey,
    KeyNotFound,
    ObjectStorage,
    StorageUnavailable,
    open_storage,
)
from spool.storage.local import INCOMING, LocalStorage
from tests.support.paths import REPO
from tests.support.s3_fixtures import fresh_bucket_name, s3_settings_for

pytestmark = pytest.mark.unit

MiB = 1024 * 1024
PART_MB = 5  # S3's smallest part: the multipart paths run with little data
# More than one part, so S3 has a multipart upload in progress.
BIG = bytes(range(256)) * (PART_MB * MiB // 256) + b"tail" * 1000
KEY = "videos/abc/source"
LARGE_MB = 200


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.e2e)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def storage_settings(backend, tmp_path, request) -> Settings:
    if backend == "local":
        return Settings(_env_file=None, data_dir=tmp_path / "data", storage_part_size_mb=PART_MB)
    # Only S3 tests ask for the server, so a local-only run never starts it.
    return request.getfixturevalue("s3_settings_factory")(storage_part_size_mb=PART_MB)


@pytest.fixture
def storage(storage_settings) -> ObjectStorage:
    return open_storage(storage_settings)


def uploads_in_progress(storage: ObjectStorage) -> list[str]:
    """Half-written objects the backend still holds: temp files, or S3 multipart uploads."""
    if isinstance(storage, LocalStorage):
        incoming = storage.root / INCOMING
        return sorted(p.name for p in incoming.iterdir()) if incoming.exists() else []
    answer = storage.client.list_multipart_uploads(Bucket=storage.bucket)
    return [upload["Key"] for upload in answer.get("Uploads", ())]


def assert_nothing_under(storage: ObjectStorage, key: str) -> None:
    assert not storage.exists(key)
    with pytest.raises(KeyNotFound):
        storage.stat(key)
    assert storage.list_prefix(key.rsplit("/", 1)[0]) == []


# --- writing and reading back ------------------------------------------------------------


def test_put_bytes_reads_back(storage, tmp_path):
    storage.put_bytes(b"hello world", "videos/abc/poster.jpg")

    assert storage.read_bytes("videos/abc/poster.jpg") == b"hello world"
    storage.get_to("videos/abc/poster.jpg", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"hello world"
    assert storage.size("videos/abc/poster.jpg") == 11


def test_put_file_reads_back(storage, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(BIG)

    storage.put_file(source, KEY)

    assert storage.read_bytes(KEY) == BIG
    assert storage.stat(KEY).size == len(BIG)
    assert uploads_in_progress(storage) == []


def test_empty_object(storage):
    storage.put_bytes(b"", KEY)

    assert storage.read_bytes(KEY) == b""
    assert storage.size(KEY) == 0


def test_streamed_write_across_parts_reads_back(storage):
    with storage.writer(KEY) as out:
        for start in range(0, len(BIG), 300_000):
            out.write(BIG[start : start + 300_000])

    assert out.bytes_written == len(BIG)
    assert storage.read_bytes(KEY) == BIG
    assert uploads_in_progress(storage) == []


def test_aborted_write_leaves_nothing(storage):
    pending = storage.begin_write(KEY)
    pending.write(BIG)
    pending.write(BIG)

    pending.abort()

    assert_nothing_under(storage, KEY)
    assert uploads_in_progress(storage) == []


def test_write_block_that_raises_leaves_nothing(storage):
    def write_then_fail() -> None:
        with storage.writer(KEY) as out:
            out.write(BIG)
            raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_then_fail()

    assert_nothing_under(storage, KEY)
    assert uploads_in_progress(storage) == []


def test_writes_abandoned_long_ago_are_swept_and_nothing_else(storage):
    """A writer killed mid-write leaves its bytes in the store (a temporary file, or an S3
    multipart upload): the sweep drops those begun before its cutoff, and nothing else."""
    storage.put_bytes(b"kept", "videos/abc/done")
    abandoned = storage.begin_write(KEY)
    abandoned.write(BIG)  # past one part: on S3 the multipart upload has begun
    outside = []
    if not isinstance(storage, LocalStorage):  # another app's upload in the same bucket
        storage.client.create_multipart_upload(Bucket=storage.bucket, Key="elsewhere/x")
        outside = ["elsewhere/x"]
    in_progress = uploads_in_progress(storage)
    assert len(in_progress) == 1 + len(outside)

    assert storage.sweep_abandoned_writes(time.time() - 3600) == 0  # begun just now
    assert uploads_in_progress(storage) == in_progress
    assert storage.sweep_abandoned_writes(time.time() + 60) == 1
    assert uploads_in_progress(storage) == outside
    assert storage.read_bytes("videos/abc/done") == b"kept"
    assert storage.sweep_abandoned_writes(time.time() + 60) == 0


def test_uncommitted_object_is_invisible(storage):
    pending = storage.begin_write(KEY)
    pending.write(BIG)  # past one part: on S3 the multipart upload has begun

    assert_nothing_under(storage, KEY)

    pending.commit()
    assert storage.stat(KEY).size == len(BIG)
    assert storage.list_prefix("videos/abc") == [KEY]


def test_uncommitted_overwrite_keeps_the_old_object(storage):
    storage.put_bytes(b"old", KEY)
    pending = storage.begin_write(KEY)
    pending.write(BIG)

    assert storage.read_bytes(KEY) == b"old"

    pending.commit()
    assert storage.read_bytes(KEY) == BIG


def test_overwrite_replaces_the_whole_object(storage):
    storage.put_bytes(BIG, KEY)
    storage.put_bytes(b"short", KEY)

    assert storage.read_bytes(KEY) == b"short"
    assert storage.size(KEY) == 5


# --- ranged reads ------------------------------------------------------------------------

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable within 256


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (0, 9, DATA[:10]),  # first bytes
        (1000, 4999, DATA[1000:5000]),  # middle, several chunks
        (len(DATA) - 1, len(DATA) - 1, DATA[-1:]),  # last byte
        (7000, None, DATA[7000:]),  # to the end
        (0, None, DATA),  # everything
        (10000, 99999, DATA[10000:]),  # past the end: clipped to the size
        (len(DATA), None, b""),  # starting at the end: nothing
        (len(DATA) + 10, len(DATA) + 20, b""),  # wholly past the end: nothing
    ],
    ids=["first", "middle", "last-byte", "to-end", "all", "clipped", "at-end", "past-end"],
)
def test_ranged_read(storage, first, last, expected):
    storage.put_bytes(DATA, KEY)

    chunks = list(storage.iter_range(KEY, first, last, chunk_size=1000))

    assert b"".join(chunks) == expected
    assert all(len(chunk) <= 1000 for chunk in chunks)


def test_range_reader_closed_early_does_not_leak(storage):
    storage.put_bytes(DATA, KEY)
    # More readers than the S3 connection pool holds; each is abandoned after one chunk.
    for _ in range(40):
        reader = storage.iter_range(KEY, chunk_size=100)
        assert next(reader) == DATA[:100]
        reader.close()

    assert storage.read_bytes(KEY) == DATA


# --- stat, missing keys, deletes ---------------------------------------------------------


def test_stat_size_and_etag_follow_the_content(storage):
    storage.put_bytes(b"first version", KEY)
    first = storage.stat(KEY)
    storage.put_bytes(b"second version!", KEY)
    second = storage.stat(KEY)

    assert (first.key, first.size) == (KEY, 13)
    assert second.size == 15
    assert first.etag and second.etag and first.etag != second.etag
    assert second.modified > 0


def test_missing_key(storage, tmp_path):
    missing = "videos/nope/source"

    with pytest.raises(KeyNotFound):
        storage.get_to(missing, tmp_path / "out")
    with pytest.raises(KeyNotFound):
        storage.iter_range(missing)  # raised at the call, before any iteration
    with pytest.raises(KeyNotFound):
        storage.stat(missing)
    assert storage.exists(missing) is False
    assert not (tmp_path / "out").exists()
    assert issubclass(KeyNotFound, FileNotFoundError)


def test_delete(storage):
    storage.put_bytes(b"x", KEY)

    storage.delete(KEY)
    storage.delete(KEY)  # again: deletes are retried, a missing key is fine
    storage.delete("videos/never/existed")

    assert not storage.exists(KEY)


def test_list_and_delete_prefix_stay_inside_the_prefix(storage):
    keys = [
        "videos/ab/source",
        "videos/ab/720p.mp4",
        "videos/ab/sub/deep.txt",
        "videos/abc/source",
        "videos/abx",
        "other/ab/source",
    ]
    for key in keys:
        storage.put_bytes(key.encode(), key)

    expected = ["videos/ab/720p.mp4", "videos/ab/source", "videos/ab/sub/deep.txt"]
    assert storage.list_prefix("videos/ab") == expected
    assert storage.list_prefix("videos/ab/") == expected
    assert storage.list_prefix("videos/none") == []

    assert storage.delete_prefix("videos/ab/") == 3

    assert storage.list_prefix("videos/ab") == []
    assert storage.list_prefix("videos") == ["videos/abc/source", "videos/abx"]
    assert storage.read_bytes("other/ab/source") == b"other/ab/source"
    assert storage.delete_prefix("videos/ab") == 0


def test_delete_prefix_in_batches(storage, monkeypatch):
    import spool.storage.s3

    monkeypatch.setattr(spool.storage.s3, "DELETE_BATCH", 3)  # S3: 7 keys = 3 calls
    for n in range(7):
        storage.put_bytes(b"x", f"videos/many/{n}")

    assert storage.delete_prefix("videos/many") == 7
    assert storage.list_prefix("videos/many") == []


# --- refused keys ------------------------------------------------------------------------

BAD_KEYS = ["../x", "videos/../../etc/passwd", "/abs", "a//b", "a/./b", "a\\b", "", "x\x00y"]


def key_operations(tmp_path: Path) -> dict[str, Callable[[ObjectStorage, str], object]]:
    source = tmp_path / "source.bin"
    source.write_bytes(b"data")
    return {
        "begin_write": lambda s, k: s.begin_write(k),
        "put_bytes": lambda s, k: s.put_bytes(b"data", k),
        "put_file": lambda s, k: s.put_file(source, k),
        "get_to": lambda s, k: s.get_to(k, tmp_path / "out"),
        "iter_range": lambda s, k: s.iter_range(k),
        "read_bytes": lambda s, k: s.read_bytes(k),
        "stat": lambda s, k: s.stat(k),
        "exists": lambda s, k: s.exists(k),
        "delete": lambda s, k: s.delete(k),
        "presigned_url": lambda s, k: s.presigned_url(k, 60),
    }


def operations_that_check(storage: ObjectStorage, tmp_path: Path) -> dict[str, Callable]:
    return key_operations(tmp_path)


@pytest.fixture(params=["local", "s3-dead-endpoint"])
def refusing_storage(request, tmp_path) -> Iterator[tuple[ObjectStorage, list[str]]]:
    """A backend and the list of requests it sent. The S3 one points at a port where nothing
    listens: any request would fail with StorageUnavailable, never with InvalidKey."""
    if request.param == "local":
        yield LocalStorage(tmp_path / "objects"), []
        return
    yield recording_dead_storage()


def recording_dead_storage() -> tuple[ObjectStorage, list[str]]:
    sent: list[str] = []
    storage = open_storage(dead_endpoint_settings())
    storage.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(f"{request.method} {request.url}")
    )
    return storage, sent


def dead_endpoint_settings(bucket: str = "spool-test-dead") -> Settings:
    return Settings(
        _env_file=None,
        storage_url=f"s3://{bucket}/spool",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        s3_region="us-east-1",
        s3_access_key_id="nobody",
        s3_secret_access_key="nothing",
    )


@pytest.mark.parametrize("bad_key", BAD_KEYS, ids=repr)
def test_bad_keys_are_refused_before_any_io(refusing_storage, bad_key, tmp_path):
    storage, sent = refusing_storage

    for name, operation in operations_that_check(storage, tmp_path).items():
        with pytest.raises(InvalidKey):
            operation(storage, bad_key)
            pytest.fail(f"{name}({bad_key!r}) was not refused")
    for list_operation in (storage.list_prefix, storage.delete_prefix):
        with pytest.raises(InvalidKey):
            list_operation(bad_key)

    assert sent == []
    assert not (tmp_path / "out").exists()


def test_listing_everything_is_refused(refusing_storage):
    storage, sent = refusing_storage

    for prefix in ("", "/"):
        with pytest.raises(InvalidKey):
            storage.list_prefix(prefix)
        with pytest.raises(InvalidKey):
            storage.delete_prefix(prefix)
    assert sent == []


def test_the_dead_endpoint_really_is_dead():
    """The guard of the tests above: a valid key there does send a request, and fails."""
    storage, sent = recording_dead_storage()

    with pytest.raises(StorageUnavailable):
        storage.stat("videos/abc/source")
    assert sent


# --- presigned URLs ----------------------------------------------------------------------


def test_presigned_url(storage, backend):
    storage.put_bytes(DATA, KEY)

    url = storage.presigned_url(KEY, 60)

    if backend == "local":
        assert url is None
        return
    assert httpx.get(url).content == DATA
    ranged = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.content == DATA[100:200]
    assert storage.client.meta.config.signature_version == "s3v4"
    assert "X-Amz-Signature=" in url


@pytest.mark.e2e
def test_presigned_url_is_refused_when_tampered(s3_settings):
    storage = open_storage(s3_settings)
    storage.put_bytes(DATA, KEY)

    url = storage.presigned_url(KEY, 60).replace("X-Amz-Signature=", "X-Amz-Signature=00")

    assert httpx.get(url).status_code == 403


# --- availability ------------------------------------------------------------------------


def test_check_passes_on_a_healthy_store(storage):
    storage.check()


def test_check_names_an_unreachable_endpoint():
    settings = dead_endpoint_settings()
    storage = open_storage(settings)

    with pytest.raises(StorageUnavailable, match="unreachable") as failure:
        storage.check()

    assert settings.s3_endpoint_url in str(failure.value)
    assert "spool-test-dead" in str(failure.value)
    # Down is not missing: a caller must not conclude the object is gone.
    with pytest.raises(StorageUnavailable):
        storage.stat(KEY)
    with pytest.raises(StorageUnavailable):
        storage.put_bytes(b"x", KEY)


@pytest.mark.e2e
def test_check_names_a_missing_bucket(s3_server):
    storage = open_storage(s3_settings_for(s3_server, fresh_bucket_name()))

    with pytest.raises(StorageUnavailable, match="no such bucket"):
        storage.check()


@pytest.mark.e2e
def test_check_names_refused_credentials(s3_settings):
    wrong = s3_settings.model_copy(update={"s3_secret_access_key": SecretStr("not-the-secret")})
    storage = open_storage(wrong)

    with pytest.raises(StorageUnavailable, match="access denied"):
        storage.check()
    with pytest.raises(StorageUnavailable, match="access denied"):
        storage.put_bytes(b"x", KEY)


@pytest.mark.e2e
def test_stopped_server_is_unavailable_and_restart_keeps_the_data(tmp_path):
    """A private server (the session's keeps running): stop it, then start it on the same
    port and data, as the fault tests do."""
    from devstack.s3proxy import S3ProxyServer
    from tests.support.services import started

    server = S3ProxyServer(tmp_path / "s3", free_port(), tmp_path / "s3proxy.log")
    with started(server, "S3Proxy"):
        storage = open_storage(
            s3_settings_for(server, "spool-restart", storage_part_size_mb=PART_MB)
        )
        storage.ensure_bucket()
        storage.put_bytes(BIG, KEY)
        interrupted = storage.begin_write("videos/abc/720p.mp4")
        interrupted.write(BIG)  # a multipart upload is under way when the server goes

        server.stop()
        with pytest.raises(StorageUnavailable, match="unreachable") as failure:
            storage.check()
        assert server.url in str(failure.value)
        with pytest.raises(StorageUnavailable):
            storage.stat(KEY)
        with pytest.raises(StorageUnavailable):
            interrupted.write(BIG)
        interrupted.abort()  # best effort: must not raise over the error being handled

        server.start()
        storage.check()
        assert storage.read_bytes(KEY) == BIG
        assert storage.list_prefix("videos/abc") == [KEY]


def test_describe_names_the_place_not_the_secret(storage_settings, backend):
    storage = open_storage(storage_settings)

    description = storage.describe()

    if backend == "s3":
        assert description.startswith(f"{storage_settings.storage_url} at http://127.0.0.1:")
        assert storage_settings.s3_secret_access_key.get_secret_value() not in description
        assert storage_settings.s3_access_key_id not in description
    else:
        assert str(storage_settings.resolved_storage_dir) in description


# --- configuration from the standard AWS variables ---------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("endpoint_variable", "region_variable"),
    [("AWS_ENDPOINT_URL_S3", "AWS_REGION"), ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")],
)
def test_standard_aws_variables_reach_the_server(
    s3_server, monkeypatch, tmp_path, endpoint_variable, region_variable
):
    bucket = fresh_bucket_name()
    # Created as an operator would, beforehand: S3Proxy accepts no LocationConstraint.
    open_storage(s3_settings_for(s3_server, bucket)).ensure_bucket()
    for name in list(os.environ):
        if name.startswith(("AWS_", "SPOOL_")):
            monkeypatch.delenv(name)
    # No profile file on this machine may add to (or override) what the test sets.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("SPOOL_STORAGE_URL", f"s3://{bucket}/from-env")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv(region_variable, "eu-west-1")
    monkeypatch.setenv(endpoint_variable, s3_server.url)

    storage = open_storage(Settings(_env_file=None))
    storage.put_bytes(b"through the AWS variables", KEY)

    assert storage.describe() == f"s3://{bucket}/from-env at {s3_server.url}"
    assert storage.client.meta.region_name == "eu-west-1"
    # The bytes are on the server's disk: the request really went there, signed.
    on_disk = s3_server.buckets_dir / bucket / "from-env" / KEY
    assert on_disk.read_bytes() == b"through the AWS variables"
    storage.check()


# --- large objects in bounded memory -----------------------------------------------------


def storage_env(settings: Settings) -> dict[str, str]:
    """The SPOOL_* variables that make Settings() in a child equal to ``settings``."""
    env = {"SPOOL_STORAGE_PART_SIZE_MB": str(settings.storage_part_size_mb)}
    if settings.storage_url is None:
        return {**env, "SPOOL_STORAGE_DIR": str(settings.resolved_storage_dir)}
    return {
        **env,
        "SPOOL_STORAGE_URL": settings.storage_url,
        "SPOOL_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "SPOOL_S3_REGION": settings.s3_region or "",
        "SPOOL_S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
        "SPOOL_S3_SECRET_ACCESS_KEY": settings.s3_secret_access_key.get_secret_value(),
    }


def upload_in_child(settings: Settings, mode: str, key: str, source: Path | None) -> dict:
    """Run one upload in a fresh interpreter; return its digest and memory figures.

    A child of its own, because the peak RSS is a process's: nothing else this test session
    did may count against the upload."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("SPOOL_", "AWS_"))
    }
    env.update(storage_env(settings))
    argv = [
        sys.executable,
        "-m",
        "tests.support.upload_child",
        mode,
        key,
        str(source or ""),
        str(LARGE_MB),
    ]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_random_file(path: Path, megabytes: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(megabytes):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha256").hexdigest()


def sha256_of_object(storage: ObjectStorage, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in storage.iter_range(key, chunk_size=MiB):
        digest.update(chunk)
    return digest.hexdigest()


def memory_bound(settings: Settings) -> int:
    """What a bounded upload may add to a process: a few parts plus client overhead."""
    return 4 * settings.storage_part_size_mb * MiB + 64 * MiB


def memory_report(figures: dict, settings: Settings) -> str:
    return (
        f"baseline {figures['baseline'] / MiB:.0f} MiB, peak {figures['peak'] / MiB:.0f} MiB, "
        f"growth {(figures['peak'] - figures['baseline']) / MiB:.0f} MiB "
        f"(bound {memory_bound(settings) / MiB:.0f} MiB)"
    )


@pytest.fixture
def large_settings(storage_settings) -> Settings:
    # The default part size (16 MiB): the bound below must hold for the real configuration.
    return storage_settings.model_copy(update={"storage_part_size_mb": 16})


def test_large_streamed_upload_uses_bounded_memory(large_settings):
    key = "videos/large/source"

    figures = upload_in_child(large_settings, "stream", key, None)
    print("streamed upload memory:", memory_report(figures, large_settings))

    growth = figures["peak"] - figures["baseline"]
    assert LARGE_MB * MiB > memory_bound(large_settings)  # else the bound proves nothing
    assert growth < memory_bound(large_settings), figures
    storage = open_storage(large_settings)
    assert storage.size(key) == LARGE_MB * MiB
    assert sha256_of_object(storage, key) == figures["sha256"]
    assert uploads_in_progress(storage) == []


def test_large_file_upload_uses_bounded_memory(large_settings, tmp_path):
    key = "videos/large/source"
    source = tmp_path / "large.bin"
    expected = write_random_file(source, LARGE_MB)

    figures = upload_in_child(large_settings, "file", key, source)
    print("put_file memory:", memory_report(figures, large_settings))

    growth = figures["peak"] - figures["baseline"]
    assert growth < memory_bound(large_settings), figures
    storage = open_storage(large_settings)
    assert storage.size(key) == LARGE_MB * MiB
    assert sha256_of_object(storage, key) == expected
    source.unlink()  # the download below needs the room more than the source does
    storage.get_to(key, tmp_path / "back.bin")
    assert sha256_of_file(tmp_path / "back.bin") == expected


def test_a_finished_local_write_refuses_more_and_aborting_it_is_harmless(tmp_path):
    """A pending write used after commit or abort fails loudly, naming the mistake; abort
    after either is a no-op, so cleanup code may always call it."""
    storage = LocalStorage(tmp_path / "objects")
    committed = storage.begin_write(KEY)
    committed.write(b"whole")
    committed.commit()
    committed.abort()  # cleanup after success: the object stays
    assert storage.read_bytes(KEY) == b"whole"
    with pytest.raises(AssertionError, match="^write after commit or abort$"):
        committed.write(b"more")
    with pytest.raises(AssertionError, match="^commit after commit or abort$"):
        committed.commit()
    aborted = storage.begin_write("videos/abc/other")
    aborted.write(b"part")
    aborted.abort()
    aborted.abort()  # twice: still nothing, no error
    with pytest.raises(AssertionError, match="^write after commit or abort$"):
        aborted.write(b"more")
    assert not storage.exists("videos/abc/other")
    assert uploads_in_progress(storage) == []
