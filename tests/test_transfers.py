"""How a step moves its files to and from the object store (spool/storage/transfers.py): several
transfers at once, an HLS playlist only after its segments, and after a cancel nothing new."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from spool.config import Settings
from spool.storage.transfers import TRANSFERS, Transfers
from tests.support.waiting import eventually

pytestmark = pytest.mark.unit


class SlowStore:
    """put_file/get_to that record what runs at once and wait for ``release``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started: list[str] = []
        self.done: list[str] = []
        self.release = threading.Event()
        self.all_waiting = threading.Event()
        self.expect = TRANSFERS
        self.held: set[str] = set()  # these wait for release_held instead
        self.release_held = threading.Event()
        self.done_before: dict[str, set[str]] = {}  # what had ended when each one started

    def _call(self, name: str) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.append(name)
            self.done_before[name] = set(self.done)
            if self.running >= self.expect:
                self.all_waiting.set()
        try:
            gate = self.release_held if name in self.held else self.release
            assert gate.wait(60), "never released"
        finally:
            with self.lock:
                self.running -= 1
                self.done.append(name)

    def put_file(self, path: Path, key: str) -> None:
        self._call(key)

    def get_to(self, key: str, local_path: Path) -> None:
        self._call(key)
        Path(local_path).write_text(key)


@pytest.fixture
def transfers(tmp_path) -> Transfers:
    transfers = Transfers.from_settings(Settings(data_dir=tmp_path / "data"))
    transfers.storage = SlowStore()
    return transfers


async def test_uploads_run_side_by_side_and_the_playlist_lands_last(transfers, tmp_path):
    store = transfers.storage
    segments = [(tmp_path / f"seg-{i}.m4s", f"hls/seg-{i}") for i in range(9)]
    store.held = {"hls/seg-0"}  # the first segment stays in flight while the others end
    upload = asyncio.create_task(
        transfers.put_all(segments, [(tmp_path / "index.m3u8", "hls/index")])
    )
    await eventually(store.all_waiting.is_set, "TRANSFERS uploads under way at once", within=60)
    assert store.running == TRANSFERS
    store.release.set()
    await eventually(lambda: len(store.done) == len(segments) - 1, "the other segments stored")
    store.release_held.set()
    await upload
    assert store.most == TRANSFERS > 1
    # The playlist started only once every segment had been stored, the held one too.
    assert store.done_before["hls/index"] == {key for _, key in segments}


async def test_downloads_come_back_in_order(transfers, tmp_path):
    store = transfers.storage
    store.release.set()
    wanted = [(f"k{i}", tmp_path / f"f{i}") for i in range(7)]
    got = await transfers.fetch_all(wanted)
    assert got == [dest for _, dest in wanted]
    assert [p.read_text() for p in got] == [key for key, _ in wanted]


async def test_a_cancel_starts_no_more_uploads_and_waits_for_the_running_ones(transfers, tmp_path):
    store = transfers.storage
    files = [(tmp_path / f"seg-{i}.m4s", f"hls/seg-{i}") for i in range(10)]
    upload = asyncio.create_task(transfers.put_all(files, [(tmp_path / "index.m3u8", "hls/index")]))
    await eventually(store.all_waiting.is_set, "TRANSFERS uploads under way at once", within=60)
    upload.cancel()
    await asyncio.sleep(0)  # the cancel reaches the step, which now waits for the running ones
    assert not upload.done()
    store.release.set()
    with pytest.raises(asyncio.CancelledError):
        await upload
    # Only those already running went out, and every one had ended when the cancel was
    # acknowledged: nothing lands under a key after it.
    assert len(store.started) == TRANSFERS and store.running == 0
    assert sorted(store.done) == sorted(store.started)
    assert "hls/index" not in store.started
