"""Faults of a video job, against the real servers: the whole stack SIGKILLed mid-transcode,
and the owner's webhook receiver down or answering 503 for a while. Each job ends ready,
its stored files whole and probe-able, and each webhook event is delivered by one id (a
receiver may see a retry of one id), in order per video.

The means (gates, not delays; figures printed, never asserted): tests/support/faults.py.
(The object store stopped mid-job is tests/test_cluster.py::test_storage_stopped_mid_job_then_back.)
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from temporalio.client import Client, WorkflowExecutionStatus

from devstack.stack import EmbeddedStack, local_api_key, local_webhook_secret
from spool.config import Settings
from spool.db import get_engine
from spool.storage import keys as storage_keys
from spool.storage import open_storage
from tests.support import media_clips
from tests.support.api import AUTH, api_client, api_settings
from tests.support.fault_audit import ledger_rows
from tests.support.faults import (
    eventually,
    figure,
    final_result,
    kill_stack,
    stack_client,
    start_first_stack,
)
from tests.support.history import heartbeating_activities, highest_attempt_by_type
from tests.support.media_checks import ffprobe_json
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.workers import spool_worker

pytestmark = pytest.mark.e2e
SECRET = "whsec_" + "c3Bvb2wtZmF1bHRzLXNlY3JldC0wMTIzNDU2Nzg5"
CAPTIONS_AVAILABLE, VIDEO_READY = "video.captions_available", "video.ready"
PLAYABLE = "video.playable"  # a video of several chunks plays before it is ready


async def upload_clip(http: httpx.AsyncClient, clip: Path, auth: dict, **fields: str) -> dict:
    r = await http.post(
        "/v1/videos",
        headers=auth,
        data=fields,
        files={"file": (clip.name, clip.read_bytes(), "video/mp4")},
    )
    assert r.status_code == 202, r.text
    return r.json()


async def heartbeating(client: Client, job_id: str, activity_id: str) -> float:
    """Once the activity runs and has heartbeated progress: its percent."""
    handle = client.get_workflow_handle(job_id)

    async def percent() -> float | None:
        for pending, done in await heartbeating_activities(handle):
            if pending.activity_id == activity_id and done > 0:
                return done
        return None

    return await eventually(percent, f"{activity_id} of {job_id} heartbeating progress")


def probe(data: bytes, suffix: str) -> dict:
    """ffprobe's view of a stored file (format name and duration); fails if unreadable."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        return ffprobe_json(Path(fh.name), "-show_entries", "format=format_name,duration")["format"]


def assert_video_files_complete(
    settings: Settings, video_id: str, renditions: list[str], seconds: float
) -> None:
    """Every rendition, the poster and the captions are stored whole: each probes, and each
    rendition lasts as long as the source."""
    storage = open_storage(settings)
    present = set(storage.list_prefix(storage_keys.video_prefix(video_id)))
    wanted = {storage_keys.rendition_key(video_id, name): ".mp4" for name in renditions}
    wanted[storage_keys.poster_key(video_id)] = ".jpg"
    for fmt in ("vtt", "srt"):
        wanted[storage_keys.captions_key(video_id, "en", fmt)] = f".{fmt}"
    assert set(wanted) <= present, f"missing: {sorted(set(wanted) - present)}"
    for key, suffix in wanted.items():
        fmt = probe(storage.read_bytes(key), suffix)
        if suffix == ".mp4":
            assert abs(float(fmt["duration"]) - seconds) < 1.0, (key, fmt)


def assert_events_once(receiver: WebhookReceiver, event_types: set[str]) -> None:
    """Each event delivered by exactly one id, none missing, nothing else, every signature
    valid."""
    assert receiver.unverified == []
    ids = receiver.ids_by_type()
    assert set(ids) == event_types, ids
    assert all(len(found) == 1 for found in ids.values()), ids


async def test_whole_stack_killed_mid_video_ends_ready_and_each_event_arrives_once(
    stack_settings, clips, whisper_ready
):
    seconds = 20.0  # read at native pace: the transcode surely runs when the kill comes
    clip = media_clips.make_clip(
        clips / "twenty.mp4", width=854, height=480, seconds=seconds, pattern="testsrc2"
    )
    paced = ["-m", "tests.support.paced_worker"]
    stacks = [start_first_stack(stack_settings, worker_args=paced)]
    receiver = WebhookReceiver(local_webhook_secret(stack_settings)).start()
    try:
        first = stacks[0]
        async with httpx.AsyncClient(base_url=first.api_url, timeout=120) as http:
            stack_auth = {"Authorization": f"Bearer {local_api_key(stack_settings)}"}
            job = await upload_clip(http, clip, stack_auth, callback_url=receiver.url)
        percent = await heartbeating(await stack_client(first), job["job_id"], "encode-00000")
        kill_stack(first)
        killed = time.monotonic()
        print(f"\n[fault] whole stack SIGKILLed with encode-00000 at {percent:.0f} %")
        stacks.append(
            EmbeddedStack(
                stack_settings,
                temporal_port=first.temporal_port,
                ui_port=first.ui_port,
                worker_args=paced,
            ).start()
        )
        figure("whole stack: restart on the same data", time.monotonic() - killed)
        client = await stack_client(stacks[-1])
        handle = client.get_workflow_handle(job["job_id"])
        result = await final_result(client, job["job_id"])
        figure("whole stack: kill -> job ready", time.monotonic() - killed)
        async with httpx.AsyncClient(base_url=stacks[-1].api_url, timeout=120) as http:
            video = (await http.get(f"/v1/videos/{job['video_id']}")).json()
        attempts = await highest_attempt_by_type(handle)
        child = await client.get_workflow_handle(f"{job['job_id']}-captions").describe()
    finally:
        receiver.stop()
        for stack in reversed(stacks):
            stack.stop()
    assert result["state"] == video["state"] == "ready", (result, video)
    assert [r["name"] for r in video["renditions"]] == ["480p", "360p"]
    assert video["captions"]["state"] == "available" and video["poster_url"]
    assert child.status == WorkflowExecutionStatus.COMPLETED
    # The kill landed mid-encode: the chunk that was running had to run again.
    assert attempts["video.encode_chunk"] >= 2, attempts
    assert open_storage(stack_settings).exists(storage_keys.hls_master_key(job["video_id"]))
    assert_video_files_complete(stack_settings, job["video_id"], ["480p", "360p"], seconds)
    assert_events_once(receiver, {PLAYABLE, CAPTIONS_AVAILABLE, VIDEO_READY})
    rows = ledger_rows(
        get_engine(stack_settings),
        [
            f"playable:{job['video_id']}",
            f"captions-available:{job['video_id']}",
            f"video-done:{job['video_id']}",
        ],
    )
    assert {r["recipient"] for r in rows} == {receiver.url, "api"}
    assert all(r["delivered_at"] is not None for r in rows), rows


# --- a webhook receiver down for a while ----------------------------------------------------


def webhook_test_settings(settings: Settings) -> Settings:
    return api_settings(
        settings, notifier="webhook", webhook_secret=SECRET, webhook_allowlist=["127.0.0.1/32"]
    )


def video_event_ids(video_id: str) -> list[str]:
    return [f"captions-available:{video_id}", f"video-done:{video_id}"]


def attempts_to(engine: sa.Engine, video_id: str, url: str) -> dict[str, int]:
    """Delivery attempts so far of each of the video's events to ``url``, by the ledger."""
    return {
        r["event_id"]: r["attempts"]
        for r in ledger_rows(engine, video_event_ids(video_id))
        if r["recipient"] == url
    }


async def run_video_with_receiver(
    client: Client,
    s: Settings,
    clip: Path,
    receiver: WebhookReceiver,
    gate: Callable[[str], object],
) -> dict:
    """Upload through the API with the receiver as callback; once ``gate(video_id)`` holds,
    start the receiver (if down); return the job's result once the workflow closed."""
    async with api_client(s, client) as http:
        job = await upload_clip(http, clip, AUTH, callback_url=receiver.url)
        async with spool_worker(client, s):
            handle = client.get_workflow_handle(job["job_id"])

            async def outage_over() -> bool:
                # A job that closed while the receiver was away has nothing left to send:
                # the assertions then say what never arrived.
                return bool(gate(job["video_id"])) or (
                    (await handle.describe()).status != WorkflowExecutionStatus.RUNNING
                )

            await eventually(outage_over, "the receiver's outage gate")
            back = time.monotonic()
            receiver.start()
            result = await final_result(client, job["job_id"])
            figure("webhook receiver: back -> job closed", time.monotonic() - back)
    return {**result, "video_id": job["video_id"]}


@pytest.fixture
def talk_clip(clips) -> Path:
    return media_clips.make_clip(
        clips / "talk.mp4",
        width=320,
        height=240,
        seconds=2.5,
        speech="Spool announces captions first",
    )


async def test_receiver_down_then_back_gets_each_event_once(
    client, settings, talk_clip, whisper_ready
):
    s = webhook_test_settings(settings)
    receiver = WebhookReceiver(SECRET)  # not listening: connections are refused
    engine = get_engine(s)

    def refused_twice(video_id: str) -> bool:
        # The first event (captions available) refused twice; video.ready is held back
        # until it is delivered (in order per video), so the outage covers both.
        tried = attempts_to(engine, video_id, receiver.url)
        return tried.get(f"captions-available:{video_id}", 0) >= 2

    try:
        result = await run_video_with_receiver(client, s, talk_clip, receiver, refused_twice)
    finally:
        receiver.stop()
    assert result["state"] == "ready", result
    assert_events_once(receiver, {CAPTIONS_AVAILABLE, VIDEO_READY})
    rows = ledger_rows(engine, video_event_ids(result["video_id"]))
    assert all(r["delivered_at"] is not None for r in rows), rows
    tried = attempts_to(engine, result["video_id"], receiver.url)
    print(f"\n[fault] receiver down: attempts {tried}, re-sends absorbed {receiver.resends()}")


class DeliveredOutOfOrder(AssertionError):
    """video.ready reached a receiver before video.captions_available of the same video."""


async def test_receiver_back_gets_captions_available_before_video_ready(
    client, settings, talk_clip, whisper_ready
):
    """In order per video means: to one destination, video.ready is never delivered before
    video.captions_available when the captions were available before the job ended. The
    receiver answers 503 while its app is down and comes back at the first video.ready
    request it sees, a moment any outage can end at; if Spool held video.ready back, the
    receiver comes back instead after refusing captions-available 5 times."""
    s = webhook_test_settings(settings)
    state = {"back": False, "captions_refused": 0}

    def answer(event: dict) -> int:
        if event["type"] == VIDEO_READY or state["captions_refused"] >= 5:
            state["back"] = True
        if state["back"]:
            return 204
        state["captions_refused"] += event["type"] == CAPTIONS_AVAILABLE
        return 503

    receiver = WebhookReceiver(SECRET, answer=answer)
    try:
        result = await run_video_with_receiver(
            client, s, talk_clip, receiver, lambda _video_id: True
        )
    finally:
        receiver.stop()
    assert result["state"] == "ready", result
    assert result["captions_state"] == "available", result
    assert_events_once(receiver, {CAPTIONS_AVAILABLE, VIDEO_READY})
    order = receiver.accepted_types_in_order()
    if order != [CAPTIONS_AVAILABLE, VIDEO_READY]:
        # Its own exception: the xfail documents this bug only, and any other failure shows.
        raise DeliveredOutOfOrder(f"accepted in this order: {order}")
