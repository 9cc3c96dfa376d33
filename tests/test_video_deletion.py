"""Deleting a video (DELETE /v1/videos/{id}, workflows/deletion.py): from acceptance the video
and its media answer 404; its running job is stopped and waited for; then every object under
its prefix and its rows go, on both storage backends, other videos untouched; a repeat is
absorbed, an unknown video refused, and a worker killed mid-delete changes nothing of that.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from spool.db import get_engine
from spool.db.deletions import deletion_of
from spool.ingest import video_job_input
from spool.models import VideoDeletionStatus, video_deletion_workflow_id, video_workflow_id
from spool.service import jobs
from spool.service.deletion import VideoNotFound, delete_video
from spool.service.jobs import start_video
from spool.storage import keys, open_storage
from spool.storage import s3 as s3_storage
from tests.support.api import API_KEY, AUTH, api_client, api_settings, assert_error
from tests.support.deletion import (
    HeldVideo,
    deletion_activities,
    deletion_state,
    deletion_worker,
    keep_history,
    leftovers,
    notices,
    seed_video,
)
from tests.support.history import attempts_by_activity
from tests.support.live_api import live_api
from tests.support.processes import run_starter, spool_env, start_worker
from tests.support.video import WORKFLOWS
from workflows.deletion import VideoDeletionWorkflow

pytestmark = pytest.mark.orchestration

NOTHING = {"objects": [], "row": None, "segments": []}


def fast(settings):
    """Settings whose deletions look again for late writes soon after the first pass."""
    return settings.model_copy(update={"video_delete_recheck_seconds": 0.5})


def deletion_handle(client, video_id: str):
    return client.get_workflow_handle(
        video_deletion_workflow_id(video_id), result_type=VideoDeletionStatus
    )


async def deletes_everything(settings, client, gone: str) -> VideoDeletionStatus:
    """Delete ``gone`` (seeded here) through the API beside another video, and check what a
    delete promises; the deletion's final status."""
    settings = api_settings(fast(settings))
    kept = uuid.uuid4().hex[:12]
    seeded = seed_video(settings, gone)
    others = seed_video(settings, kept)
    async with deletion_worker(client, settings), api_client(settings, client) as http:
        r = await http.delete(f"/v1/videos/{gone}", headers=AUTH)
        assert r.status_code == 202, r.text
        accepted = r.json()
        assert accepted == {
            "video_id": gone,
            "job_id": video_deletion_workflow_id(gone),
            "state": "deleting",
        }
        # From acceptance, whatever the job has done yet: the video and its media are gone.
        assert_error(await http.get(f"/v1/videos/{gone}"), 404)
        assert_error(await http.get(f"/v1/videos/{gone}/poster.jpg"), 404)
        assert_error(await http.get(f"/v1/videos/{gone}/hls/master.m3u8"), 404)
        listed = (await http.get("/v1/videos")).json()["videos"]
        assert gone not in {v["video_id"] for v in listed}
        assert kept in {v["video_id"] for v in listed}
        status = await deletion_handle(client, gone).result()
        again = await http.delete(f"/v1/videos/{gone}", headers=AUTH)
        assert again.status_code == 202 and again.json() == accepted
        assert (await http.get(f"/v1/videos/{kept}")).status_code == 200
    assert status.state == "ready" and status.objects_deleted >= len(seeded)
    assert leftovers(settings, gone) == NOTHING
    assert deletion_state(settings, gone) == "deleted"
    assert open_storage(settings).list_prefix(keys.video_prefix(kept)) == others
    assert leftovers(settings, kept)["row"] is not None
    (notice,) = notices(settings, "video.deleted")
    assert notice["payload"]["video_id"] == gone and notice["recipient"] == "owner"
    return status


async def test_delete_removes_every_object_and_row_of_that_video_only(settings, client):
    gone = uuid.uuid4().hex[:12]
    await deletes_everything(settings, client, gone)
    keep_history("deletion-finished-video", await deletion_handle(client, gone).fetch_history())


@pytest.mark.e2e
async def test_delete_on_s3_leaves_no_object_and_no_unfinished_upload(
    settings, client, s3_settings_factory, monkeypatch
):
    monkeypatch.setattr(s3_storage, "DELETE_BATCH", 3)  # several DeleteObjects calls
    s3 = s3_settings_factory(base=settings)
    gone = uuid.uuid4().hex[:12]
    storage = open_storage(s3)
    # An upload in flight under the prefix: a part sent, never completed.
    pending = storage.begin_write(keys.rendition_key(gone, "720p"))
    pending.write(b"\0" * storage.part_size)
    status = await deletes_everything(s3, client, gone)
    listed = storage.client.list_multipart_uploads(
        Bucket=storage.bucket, Prefix=f"{storage.prefix}/{keys.video_prefix(gone)}"
    )
    assert not listed.get("Uploads")
    with pytest.raises(Exception):  # noqa: B017 - the store no longer knows the upload
        pending.commit()
    assert storage.list_prefix(keys.video_prefix(gone)) == []
    assert status.objects_deleted >= 1


async def test_a_delete_of_an_unknown_video_is_refused_and_changes_nothing(settings, client):
    settings = api_settings(settings)
    unknown = uuid.uuid4().hex[:12]
    async with api_client(settings, client) as http:
        r = await http.delete(f"/v1/videos/{unknown}", headers=AUTH)
    assert unknown in assert_error(r, 404)["message"]
    assert deletion_of(get_engine(settings), unknown) is None
    with pytest.raises(VideoNotFound):
        await delete_video(client, settings, get_engine(settings), unknown)
    with pytest.raises(Exception):  # noqa: B017 - no deletion job was started
        await deletion_handle(client, unknown).describe()


async def test_delete_while_the_job_runs_waits_for_it_and_its_late_upload(settings, client):
    """The job is cancelled and waited for: its chunk, told of the cancel, still finishes an
    upload (held at a gate here), and the deletion removes that object too."""
    settings = fast(settings)
    held = HeldVideo(settings)
    video_id = uuid.uuid4().hex[:12]
    open_storage(settings).put_bytes(b"source", keys.source_key(video_id))
    inp = video_job_input(settings, video_id, owner_id="owner", captions=False)
    async with Worker(
        client,
        task_queue=settings.queue_pipeline,
        workflows=[*WORKFLOWS, VideoDeletionWorkflow],
        activities=held.activities() + deletion_activities(settings),
    ):
        await start_video(client, settings, inp)
        await asyncio.wait_for(held.chunk_running.wait(), 60)
        await delete_video(client, settings, get_engine(settings), video_id)
        await asyncio.wait_for(held.cancel_seen.wait(), 60)
        # The job has not stopped (its chunk is still uploading): nothing is deleted yet.
        job = client.get_workflow_handle(video_workflow_id(video_id))
        assert (await job.describe()).status == WorkflowExecutionStatus.RUNNING
        assert open_storage(settings).exists(keys.source_key(video_id))
        held.finish_upload.set()
        status = await deletion_handle(client, video_id).result()
        assert (await job.describe()).status == WorkflowExecutionStatus.CANCELED
    assert held.late_key is not None
    assert leftovers(settings, video_id) == NOTHING
    assert {s.name for s in status.steps if s.state == "done"} == {
        "mark-deleting",
        "stop-job",
        "delete-objects",
        "delete-records",
        "delete-objects-again",
        "delete-records-again",
        "announce-deleted",
    }
    keep_history("deletion-stopped-job", await deletion_handle(client, video_id).fetch_history())


async def test_a_worker_killed_mid_delete_is_replaced_and_the_delete_finishes(settings, client):
    """The first worker deletes part of the objects and dies (SIGKILL); the deletion's next
    attempt, on another worker, removes the rest, and the notice goes out once."""
    video_id = uuid.uuid4().hex[:12]
    seeded = seed_video(settings, video_id)
    env = spool_env(settings)
    crashing = await start_worker(env, module="tests.support.crash_delete_worker")
    try:
        await delete_video(client, settings, get_engine(settings), video_id)
        assert await asyncio.wait_for(crashing.wait(), 120) == -9
    finally:
        if crashing.returncode is None:
            crashing.kill()
            await crashing.wait()
    left = leftovers(settings, video_id)["objects"]
    assert 0 < len(left) < len(seeded)  # killed in the middle
    async with deletion_worker(client, settings):
        status = await deletion_handle(client, video_id).result()
    assert status.state == "ready"
    assert leftovers(settings, video_id) == NOTHING
    assert (await attempts_by_activity(deletion_handle(client, video_id)))["delete-objects"] == [2]
    assert len(notices(settings, "video.deleted")) == 1


async def test_videos_are_listed_a_page_at_a_time_without_the_deleted(settings, client):
    settings = api_settings(settings)
    ids = [uuid.uuid4().hex[:12] for _ in range(5)]
    for video_id in ids:
        seed_video(settings, video_id)
    async with api_client(settings, client) as http:
        r = await http.delete(f"/v1/videos/{ids[2]}", headers=AUTH)
        assert r.status_code == 202, r.text
        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/v1/videos", params=params)).json()
            assert len(page["videos"]) <= 2
            seen += [v["video_id"] for v in page["videos"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert_error(await http.get("/v1/videos", params={"cursor": "nonsense"}), 422, "cursor")
    # The first page may also show other tests' jobs that no worker has recorded.
    assert sorted(v for v in seen if v in ids) == sorted(set(ids) - {ids[2]})
    assert len(seen) == len(set(seen))


async def test_retention_deletes_the_video_at_its_time_and_ends_a_job_no_worker_runs(
    settings, client
):
    """An upload naming its delete_after is deleted then by the deletion job's durable timer;
    its job, which no worker runs here, ignores its cancel and is terminated. A deletion
    waiting for its time tells its status once its worker has gone: what its query said."""
    settings = api_settings(
        fast(settings), video_delete_stop_wait_seconds=1.0, video_retention_days=30
    )
    async with deletion_worker(client, settings), api_client(settings, client) as http:
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        r = await http.post(
            "/v1/videos",
            headers=AUTH,
            data={"delete_after": soon},
            files={"file": ("clip.mp4", b"\0" * 1000, "video/mp4")},
        )
        assert r.status_code == 202, r.text
        video_id = r.json()["video_id"]
        assert r.json()["delete_after"] == datetime.fromisoformat(soon).isoformat()
        status = await deletion_handle(client, video_id).result()
        assert_error(await http.get(f"/v1/videos/{video_id}"), 404)
        default = await http.post(
            "/v1/videos", headers=AUTH, files={"file": ("c.mp4", b"\0" * 10, "video/mp4")}
        )
        kept_until = datetime.fromisoformat(default.json()["delete_after"])
        assert timedelta(days=29) < kept_until - datetime.now(UTC) <= timedelta(days=30)
        stray = default.json()["video_id"]  # no worker runs its job: not left to others
        await client.get_workflow_handle(video_workflow_id(stray)).terminate("the test is over")
        waiting = await deletion_handle(client, stray).query("status")
        late = await http.post(
            "/v1/videos",
            headers=AUTH,
            data={"delete_after": "tomorrow"},
            files={"file": ("c.mp4", b"\0" * 10, "video/mp4")},
        )
        assert_error(late, 422, "delete_after")
    view = await jobs.status(client, video_deletion_workflow_id(stray))  # no worker now
    await deletion_handle(client, stray).terminate("the test is over")
    assert view.unavailable is None and view.state == "processing"
    stored = client.data_converter.payload_converter.to_payloads([view.pipeline])[0].data
    assert json.loads(stored) == waiting
    assert waiting["delete_at"] == pytest.approx(kept_until.timestamp())
    assert status.reason == "retention" and status.state == "ready"
    job = await client.get_workflow_handle(video_workflow_id(video_id)).describe()
    assert job.status == WorkflowExecutionStatus.TERMINATED
    assert leftovers(settings, video_id) == NOTHING


async def test_the_cli_deletes_a_video_both_ways_and_names_an_unknown_one(settings, client):
    settings = api_settings(settings)
    video_id, unknown = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    seed_video(settings, video_id)
    env = spool_env(settings)
    done = await run_starter(env, "delete-video", video_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "video_id": video_id,
        "job_id": video_deletion_workflow_id(video_id),
        "state": "deleting",
    }
    again = await run_starter(env, "delete-video", video_id, "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == json.loads(done.stdout)
    missing = await run_starter(env, "delete-video", unknown, "--json")
    assert missing.returncode == 4
    assert unknown in json.loads(missing.stdout)["error"]
    async with live_api(settings, client) as url:
        through_api = {**env, "SPOOL_API_KEY": API_KEY}
        by_api = await run_starter(through_api, "delete-video", video_id, "--json", "--api", url)
        assert by_api.returncode == 0, by_api.stderr
        assert json.loads(by_api.stdout) == json.loads(done.stdout)
        gone = await run_starter(through_api, "delete-video", unknown, "--json", "--api", url)
        assert gone.returncode == 4 and unknown in json.loads(gone.stdout)["error"]
    assert deletion_of(get_engine(settings), unknown) is None
