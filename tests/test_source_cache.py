"""The worker's cache of uploads (spool/storage/cache.py): one download per object version
for every step of a process, however the steps overlap, fail or are cancelled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from spool.storage.cache import ObjectCache
from tests.support.waiting import eventually

pytestmark = pytest.mark.unit


class Store:
    """Objects by key; each download can be held on a gate and made to fail."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False
        self.started = 0
        self.downloading = asyncio.Event()

    def download(self, key: str):
        async def fetch(dest: Path) -> None:
            self.started += 1
            self.downloading.set()
            await self.gate.wait()
            if self.fail_next:
                self.fail_next = False
                dest.write_bytes(b"half")
                raise OSError("connection reset")
            dest.write_bytes(self.objects[key])

        return fetch


@pytest.fixture
def cache(tmp_path) -> ObjectCache:
    return ObjectCache(max_bytes=100, directory=lambda: tmp_path / "sources")


async def read(cache: ObjectCache, store: Store, key: str, etag: str = "v1") -> bytes:
    async with cache.open(key, etag, store.download(key)) as path:
        return path.read_bytes()


async def test_steps_reading_one_object_at_once_download_it_once(cache, tmp_path):
    store = Store()
    store.objects["a"] = b"source bytes"
    store.gate.clear()
    readers = [asyncio.create_task(read(cache, store, "a")) for _ in range(4)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*readers) == [b"source bytes"] * 4
    assert await read(cache, store, "a") == b"source bytes"  # a later step finds the file
    assert (cache.downloads, store.started) == (1, 1)
    assert [p.name for p in (tmp_path / "sources").iterdir() if p.suffix == ".part"] == []


async def test_bytes_replaced_under_the_same_key_are_downloaded_again(cache):
    store = Store()
    store.objects["a"] = b"first"
    assert await read(cache, store, "a", "v1") == b"first"
    store.objects["a"] = b"second"
    assert await read(cache, store, "a", "v2") == b"second"
    assert cache.downloads == 2


async def test_least_recently_used_idle_copies_make_room_but_read_ones_stay(cache):
    store = Store()
    store.objects.update(a=b"a" * 40, b=b"b" * 40, c=b"c" * 40)
    await read(cache, store, "a")
    async with cache.open("b", "v1", store.download("b")) as held:
        await read(cache, store, "c")  # 120 bytes > 100: "a" (idle, oldest) goes, not "b"
        assert held.read_bytes() == b"b" * 40
        assert cache.held_bytes() == 80
        await read(cache, store, "a")  # again: "c" is the idle one now
        assert held.exists() and cache.held_bytes() == 80
    assert cache.downloads == 4
    assert not cache.fits(101) and cache.fits(100) and not cache.fits(0)


async def test_a_cancelled_step_leaves_the_download_to_the_steps_still_waiting(cache):
    store = Store()
    store.objects["a"] = b"source"
    store.gate.clear()
    first = asyncio.create_task(read(cache, store, "a"))
    second = asyncio.create_task(read(cache, store, "a"))
    await store.downloading.wait()  # the first step's download is under way, held by the gate
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    store.gate.set()
    assert await second == b"source"
    assert (cache.downloads, store.started) == (1, 1)


async def test_a_failed_download_fails_its_waiters_and_the_next_step_tries_again(cache, tmp_path):
    store = Store()
    store.objects["a"] = b"source"
    store.fail_next = True
    store.gate.clear()
    readers = [asyncio.create_task(read(cache, store, "a")) for _ in range(2)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results), results
    assert list((tmp_path / "sources").iterdir()) == []  # no half file kept, none served
    assert await read(cache, store, "a") == b"source"
    assert store.started == 2


def clocked_cache(tmp_path, max_idle_seconds: float) -> tuple[ObjectCache, list[float]]:
    """A cache whose clock reads ``now[0]``, which the test sets."""
    now = [0.0]
    return ObjectCache(
        max_bytes=1000,
        directory=lambda: tmp_path / "sources",
        max_idle_seconds=max_idle_seconds,
        clock=lambda: now[0],
    ), now


async def test_copies_no_step_has_read_for_a_while_are_deleted(tmp_path):
    cache, now = clocked_cache(tmp_path, 600)
    store = Store()
    store.objects.update(a=b"old upload", b=b"in use")
    async with cache.open("a", "v1", store.download("a")) as a_path:
        pass
    async with cache.open("b", "v1", store.download("b")) as held:
        now[0] = 599.0
        cache.expire_idle()
        assert a_path.exists()  # idle, but not for long enough
        now[0] = 10_000.0
        cache.expire_idle()
        assert not a_path.exists() and cache.held_bytes() == len(b"in use")
        assert held.exists()  # being read: never deleted, however old
    assert await read(cache, store, "a") == b"old upload"  # fetched again when asked
    assert cache.downloads == 3


async def test_an_idle_host_deletes_its_copies_without_another_step(tmp_path):
    cache = ObjectCache(
        max_bytes=1000, directory=lambda: tmp_path / "sources", max_idle_seconds=0.01
    )
    store = Store()
    store.objects["a"] = b"upload"
    async with cache.open("a", "v1", store.download("a")) as path:
        assert path.exists()
    await eventually(lambda: not path.exists(), "the idle copy deleted", within=60)
    assert cache.held_bytes() == 0


async def test_a_copy_let_go_while_the_expiry_timer_waits_is_deleted_when_due(tmp_path):
    """One timer serves every copy: when it fires it deletes what is due and waits again
    for the next copy, let go after it was set."""
    cache, now = clocked_cache(tmp_path, 0.05)
    store = Store()
    store.objects.update(a=b"first", b=b"second")
    async with cache.open("a", "v1", store.download("a")) as a_path:
        pass  # idle from 0: the timer is set
    async with cache.open("b", "v1", store.download("b")) as b_path:
        now[0] = 1000.0  # b is let go at 1000, while the timer still waits
    await eventually(lambda: not a_path.exists(), "the first idle copy deleted", within=60)
    assert b_path.exists()  # idle for no time yet
    now[0] = 2000.0
    await eventually(lambda: not b_path.exists(), "the later copy deleted", within=60)
    assert cache.held_bytes() == 0


def test_a_cache_that_outlives_its_event_loop_expires_copies_in_the_next(tmp_path):
    """The expiry timer belongs to a loop: one left pending on a closed loop does not stop
    the next loop's copies from being deleted."""
    cache = ObjectCache(
        max_bytes=1000, directory=lambda: tmp_path / "sources", max_idle_seconds=0.01
    )
    store = Store()
    store.objects.update(a=b"first", b=b"second")

    async def read(key: str) -> Path:
        async with cache.open(key, "v1", store.download(key)) as path:
            return path

    asyncio.run(read("a"))  # its timer is left behind when this loop closes

    async def on_the_next_loop() -> None:
        path = await read("b")
        await eventually(lambda: not path.exists(), "the idle copy deleted", within=60)

    asyncio.run(on_the_next_loop())
