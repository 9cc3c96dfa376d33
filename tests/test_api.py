"""The HTTP API on the real stack: Temporal dev server, a real in-process worker with the real
activities, generated media; the app runs in-process over ASGI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from api import create_app, grants
from api.media import parse_range
from spool.db import get_engine
from spool.db.video import get_video
from spool.ingest import video_job_input
from spool.service import jobs
from spool.service.videos import build_view
from spool.storage import open_storage
from spool.storage.keys import rendition_key
from tests.support import hls_rules
from tests.support.api import (
    API_KEY,
    AUTH,
    api_client,
    api_settings,
    assert_error,
    storage_files,
    wait_video,
)
from tests.support.media_checks import playlist_uris
from tests.support.paths import REPO
from tests.support.waiting import eventually
from tests.support.workers import spool_worker

pytestmark = pytest.mark.e2e


# --- videos ---------------------------------------------------------------------------------


async def test_upload_acknowledged_then_ready_with_media_and_ranges(client, settings, clip):
    s = api_settings(settings)
    data = clip.read_bytes()
    async with api_client(s, client) as http:
        # No worker runs yet: the 202 cannot have waited for any processing.
        r = await http.post(
            "/v1/videos",
            headers=AUTH,
            files={"file": ("my clip.mp4", data, "video/mp4")},
            data={"captions": "true"},
        )
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["job_id"] == f"video-{body['video_id']}"
        assert body["status_url"] == f"/v1/videos/{body['video_id']}"
        # Acknowledged before any worker exists: the job is visible, processing.
        v = (await http.get(body["status_url"])).json()
        assert v["state"] == "processing"
        listed = (await http.get("/v1/videos")).json()["videos"]
        assert isinstance(listed, list)
        async with spool_worker(client, s):
            v = await wait_video(http, body["video_id"])
            assert v["state"] == "ready", v
            # "ready" is recorded before the owner's notice goes out; once the job's
            # workflow has closed, every step is done. Asked while a worker runs: a closed
            # job's steps come from a query, which needs one (steps are not in the database).
            await client.get_workflow_handle(body["job_id"]).result()
            v = (await http.get(body["status_url"])).json()
        assert v["state"] == "ready", v
        assert v["metadata"]["width"] == 320 and v["metadata"]["height"] == 240
        assert {s["name"] for s in v["steps"]} >= {"probe", "poster", "transcribe"}
        assert all(s["state"] == "done" for s in v["steps"]), v["steps"]
        [rendition] = v["renditions"]
        assert rendition["name"] == "240p"
        storage = open_storage(s)
        stored = storage.read_bytes(rendition_key(body["video_id"], "240p"))
        full = await http.get(rendition["url"])
        assert full.status_code == 200 and full.content == stored
        assert full.headers["accept-ranges"] == "bytes"
        assert full.headers["content-type"] == "video/mp4"
        part = await http.get(rendition["url"], headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1099/{len(stored)}"
        assert part.content == stored[100:1100]
        tail = await http.get(rendition["url"], headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == stored[-10:]
        bad = await http.get(rendition["url"], headers={"Range": f"bytes={len(stored)}-"})
        assert_error(bad, 416)
        assert bad.headers["content-range"] == f"bytes */{len(stored)}"
        poster = await http.get(v["poster_url"], headers={"Range": "bytes=0-2"})
        assert poster.status_code == 206 and poster.content == b"\xff\xd8\xff"
        assert v["captions"]["state"] == "available"
        vtt = await http.get(v["captions"]["vtt_url"])
        assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
        assert vtt.headers["content-type"].startswith("text/vtt")
        srt = await http.get(v["captions"]["srt_url"], headers={"Range": "bytes=0-0"})
        assert srt.status_code == 206 and srt.content == b"1"
        listed = (await http.get("/v1/videos")).json()["videos"]
        assert any(i["video_id"] == body["video_id"] and i["state"] == "ready" for i in listed)
        # Streaming links follow the record: set when its keys are, else null.
        row = get_video(get_engine(s), body["video_id"])
        assert v["hls_url"] == (
            f"{body['status_url']}/hls/master.m3u8" if row.get("hls_key") else None
        )
        assert v["storyboard_url"] == (
            f"{body['status_url']}/storyboard.vtt" if row.get("storyboard_key") else None
        )
        # The job has ended: cancelling it is a conflict, not an error of the server.
        assert_error(await http.delete(f"/v1/videos/{body['video_id']}/job", headers=AUTH), 409)
        # A video's job is started under the blog's id policy: starting it again after it
        # finished returns the finished job and runs nothing.
        handle = client.get_workflow_handle(body["job_id"])
        finished_run = (await handle.describe()).run_id
        again = await jobs.start_video(
            client, s, video_job_input(s, body["video_id"], owner_id="api")
        )
        assert again.job_id == body["job_id"] and again.run_id is None
        assert (await handle.describe()).run_id == finished_run


async def job_exists(client, job_id: str) -> bool:
    try:
        await jobs.describe(client, job_id)
    except jobs.JobNotFound:
        return False
    return True


def every_uri(playlist: str) -> list[str]:
    """The URIs an HLS playlist names: its URI lines and its tags' URI="..." attributes."""
    return [*playlist_uris(playlist), *re.findall(r'URI="([^"]+)"', playlist)]


async def test_private_reads_give_media_urls_a_browser_can_fetch_without_the_key(
    client, settings, clip
):
    """With private reads, the status (read with the key) gives media URLs under a read
    grant: every file of the video, the playlists' and the storyboard's relative URIs
    included, opens without the key; nothing else does, and a grant opens one video only,
    until it expires."""
    s = api_settings(settings, public_reads=False)
    async with api_client(s, client) as http:
        r = await http.post(
            "/v1/videos",
            headers=AUTH,
            files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")},
            data={"captions": "false"},
        )
        assert r.status_code == 202, r.text
        video_id = r.json()["video_id"]
        async with spool_worker(client, s):
            v = await wait_video(http, video_id, headers=AUTH)
        assert v["state"] == "ready", v
        base = v["poster_url"].removesuffix("/poster.jpg")
        assert base.startswith(f"/v1/videos/{video_id}/grant/"), v
        urls = [
            v["poster_url"],
            v["hls_url"],
            v["storyboard_url"],
            *(rendition["url"] for rendition in v["renditions"]),
        ]
        assert all(url and url.startswith(base + "/") for url in urls), v

        # Everything the page loads, without the key: files, then what playlists and the
        # storyboard track name, resolved against them as a player does.
        fetched: dict[str, httpx.Response] = {}
        pending = list(urls)
        while pending:
            url = pending.pop()
            if url in fetched:
                continue
            got = fetched[url] = await http.get(url)
            assert got.status_code == 200, (url, got.text)
            if url.endswith(".m3u8"):
                pending += [urljoin(url, uri) for uri in every_uri(got.text)]
            elif url.endswith("storyboard.vtt"):
                pending += [
                    urljoin(url, uri.split("#")[0])
                    for uri in re.findall(r"^(\S+#xywh=\S+)$", got.text, re.MULTILINE)
                ]
        kinds = {url.rsplit(".", 1)[-1] for url in fetched}
        assert {"m3u8", "mp4", "m4s", "jpg", "vtt"} <= kinds, sorted(fetched)
        assert all(url.startswith(base + "/") for url in fetched), sorted(fetched)
        # What the pipeline published keeps RFC 8216, on the bytes a player downloaded.
        assert hls_rules.violations(v["hls_url"], lambda url: fetched[url].content) == []
        rendition = v["renditions"][0]["url"]
        part = await http.get(rendition, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100

        # Without a grant, the key is still asked for; a grant does not open anything else.
        plain = f"/v1/videos/{video_id}/poster.jpg"
        assert_error(await http.get(plain), 401)
        assert (await http.get(plain, headers=AUTH)).status_code == 200
        for elsewhere in (base, f"{base}/job", f"{base}/nothing.jpg", f"{base}/hls/../poster.x"):
            assert_error(await http.get(elsewhere), 404)
        assert_error(await http.delete(f"{base}/job"), 404)
        # Another video's files, a changed signature, an expired grant: refused, and said so.
        other = v["poster_url"].replace(f"/v1/videos/{video_id}/", "/v1/videos/someone-else/")
        assert "invalid read grant" in assert_error(await http.get(other), 401)["message"]
        forged = base[:-1] + ("A" if base[-1] != "A" else "B") + "/poster.jpg"
        assert "invalid read grant" in assert_error(await http.get(forged), 401)["message"]
        stale = grants.media_base(s, video_id, time.time() - s.media_grant_seconds - 3600)
        assert stale is not None and stale != base
        assert "expired" in assert_error(await http.get(f"{stale}/poster.jpg"), 401)["message"]

    # Another key, another deployment: the grant means nothing there.
    s2 = api_settings(settings, public_reads=False).model_copy(
        update={"api_keys": ["another-key-0123456789"]}
    )
    async with api_client(s2, client) as http:
        assert_error(await http.get(v["poster_url"]), 401)


async def test_oversize_upload_is_refused_and_leaves_nothing(client, settings):
    s = api_settings(settings, max_upload_bytes=50_000)
    async with api_client(s, client) as http:
        # Declared too large: refused before the body is read.
        r = await http.post(
            "/v1/videos", headers=AUTH, files={"file": ("big.mp4", b"\0" * 400_000, "video/mp4")}
        )
        assert_error(r, 413, "file")

        # Undeclared length (chunked): refused while reading, past the cap.
        async def chunks():
            boundary = b"XyZ"
            yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
            yield b"Content-Type: video/mp4\r\n\r\n"
            for _ in range(20):
                yield b"\1" * 10_000
            yield b"\r\n--" + boundary + b"--\r\n"

        r = await http.post(
            "/v1/videos",
            content=chunks(),
            headers={**AUTH, "Content-Type": "multipart/form-data; boundary=XyZ"},
        )
        assert_error(r, 413, "file")
        assert storage_files(s) == []
        root = s.resolved_storage_dir
        assert (
            not any(p.is_dir() for p in (root / "videos").glob("*"))
            if (root / "videos").exists()
            else True
        )


@pytest.mark.unit
def test_upload_form_patterns_refuse_a_long_run_of_blanks_without_backtracking():
    """A blank in an upload's fields matches one way only: a value the schema refuses used to
    make the match backtrack for minutes, in the API's event loop. Run apart, so a regression
    fails here (60 s bound for "never returns") instead of wedging the suite."""
    check = (
        "import re; from api.upload_form import BOOL_PATTERN as B, RENDITIONS_PATTERN as R; "
        "assert not re.fullmatch(R, '\\t \\t ,720 ' * 40 + '*'); "
        "assert not re.fullmatch(B, ' \\t' * 100_000 + 'x')"
    )
    subprocess.run([sys.executable, "-c", check], cwd=REPO, check=True, timeout=60)


async def test_bad_uploads_are_4xx_with_nothing_left(client, settings):
    s = api_settings(settings)
    async with api_client(s, client) as http:
        assert_error(await http.post("/v1/videos", headers=AUTH, data={"captions": "true"}), 415)
        r = await http.post(
            "/v1/videos", headers=AUTH, files={"file": ("a", b"x")}, data={"captions": "perhaps"}
        )
        assert_error(r, 422, "captions")
        r = await http.post(
            "/v1/videos", headers=AUTH, files={"file": ("a", b"x")}, data={"renditions": "999p"}
        )
        assert_error(r, 422, "renditions")
        r = await http.post("/v1/videos", headers=AUTH, files={"other": ("a", b"x")})
        assert_error(r, 422, "file")
        r = await http.post("/v1/videos", headers=AUTH, files={"file": ("a", b"")})
        assert_error(r, 422, "file")
        r = await http.post(
            "/v1/videos",
            headers={**AUTH, "Content-Type": "multipart/form-data; boundary=zz"},
            content=b"garbage",
        )
        assert r.status_code in (400, 422), r.text
        # Webhooks are off here: a callback URL is refused at the door.
        r = await http.post(
            "/v1/videos",
            headers=AUTH,
            files={"file": ("a", b"x")},
            data={"callback_url": "https://example.com/hook"},
        )
        assert_error(r, 422, "callback_url")
        assert storage_files(s) == []
        assert_error(await http.get("/v1/videos/nope"), 404)
        assert_error(await http.get("/v1/videos/nope/poster.jpg"), 404)
        assert_error(await http.delete("/v1/videos/nope/job", headers=AUTH), 404)
        assert_error(await http.get("/v1/nothing-here"), 404)


async def test_every_answer_says_nosniff_and_the_page_has_a_content_security_policy(
    client, settings
):
    async with api_client(api_settings(settings), client) as http:
        page = await http.get("/")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe" not in policy and "*" not in policy, policy
        answers = [
            page,
            await http.get("/healthz"),
            await http.get("/v1/videos/nope"),
            await http.get("/static/app.js"),
        ]
        for r in answers:
            assert r.headers["x-content-type-options"] == "nosniff", r.url
            assert r.headers["referrer-policy"] == "no-referrer", r.url
        assert all("content-security-policy" not in r.headers for r in answers[1:])


def test_private_reads_without_any_key_are_refused_at_start(settings):
    """Private reads and no key: the API could serve nothing, so it does not start, and
    says which settings."""
    s = settings.model_copy(update={"public_reads": False, "api_keys": []})
    with pytest.raises(ValueError, match="SPOOL_PUBLIC_READS=false needs SPOOL_API_KEYS"):
        create_app(s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    started = subprocess.run(
        [sys.executable, "-m", "api"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **env,
            "SPOOL_PUBLIC_READS": "false",
            "SPOOL_API_KEYS": "[]",
            "SPOOL_DATA_DIR": str(settings.data_dir),
        },
    )
    assert started.returncode == 2, started.stderr
    assert "SPOOL_API_KEYS" in started.stderr and "Traceback" not in started.stderr


async def test_keys_are_required_for_writes_and_private_reads(client, settings):
    s = api_settings(settings, public_reads=False)
    async with api_client(s, client) as http:
        post = {"post_id": "p1", "author_id": "a1", "title": "T", "body": "B"}
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": API_KEY},
            {"Authorization": "Basic dGVzdA=="},
        ):
            assert_error(await http.post("/v1/posts", json=post, headers=headers), 401)
            assert_error(
                await http.post("/v1/videos", files={"file": ("a", b"x")}, headers=headers), 401
            )
            assert_error(await http.delete("/v1/videos/abc/job", headers=headers), 401)
            assert_error(await http.get("/v1/videos", headers=headers), 401)
            assert_error(await http.get("/v1/authors/a1", headers=headers), 401)
        assert (await http.get("/v1/authors/a1", headers=AUTH)).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        cfg = (await http.get("/v1/config")).json()
        assert cfg["api_key"] is None  # not exposed unless settings say so
    s2 = api_settings(settings, api_expose_key_to_localhost=True)
    async with api_client(s2, client) as http:
        assert (await http.get("/v1/config")).json()["api_key"] == API_KEY
        assert (await http.get("/v1/config", headers={"X-Forwarded-For": "8.8.8.8"})).json()[
            "api_key"
        ] is None


# --- posts ----------------------------------------------------------------------------------


async def test_post_validation_names_the_field(client, settings):
    s = api_settings(settings)
    good = {"post_id": "p1", "author_id": "a1", "title": "Title", "body": "Body"}
    async with api_client(s, client) as http:
        r = await http.post(
            "/v1/posts",
            headers={**AUTH, "Content-Type": "application/json"},
            content=b'{"post_id": "p1", ',
        )
        err = assert_error(r, 422)
        assert "JSON" in err["message"]
        assert_error(
            await http.post("/v1/posts", headers=AUTH, json={**good, "colour": "red"}),
            422,
            "colour",
        )
        assert_error(
            await http.post("/v1/posts", headers=AUTH, json={**good, "version": "2"}),
            422,
            "version",
        )
        assert_error(
            await http.post("/v1/posts", headers=AUTH, json={**good, "tags": "x"}), 422, "tags"
        )
        assert_error(
            await http.post("/v1/posts", headers=AUTH, json={**good, "title": 5}), 422, "title"
        )
        missing = {k: v for k, v in good.items() if k != "body"}
        assert_error(await http.post("/v1/posts", headers=AUTH, json=missing), 422, "body")
        assert_error(await http.post("/v1/posts", headers=AUTH, json=[good]), 422)
        assert_error(
            await http.post("/v1/posts", headers=AUTH, json={**good, "body": "  "}), 422, "body"
        )
        assert_error(
            await http.post("/v1/posts", headers=AUTH, json={**good, "published_at": "yesterday"}),
            422,
            "published_at",
        )
        assert_error(await http.get("/v1/posts/search"), 422, "q")
        assert_error(await http.get("/v1/videos?limit=0"), 422, "limit")


async def test_publishing_twice_is_one_job_and_counts_once(client, settings):
    s = api_settings(settings)
    post = {
        "post_id": "api-post-1",
        "author_id": "api-author",
        "title": "Durable kittens",
        "body": "Workflows that never forget their kittens.",
        "tags": ["temporal"],
        "followers": ["f1"],
    }
    async with api_client(s, client) as http:
        first = await http.post("/v1/posts", headers=AUTH, json=post)
        second = await http.post("/v1/posts", headers=AUTH, json=post)
        assert first.status_code == second.status_code == 202, first.text
        assert first.json()["job_id"] == second.json()["job_id"] == "post-api-post-1-v1"
        # No worker yet: the status URL answers with the job's state, not a 404; the post
        # itself (no version asked) is not published yet.
        pending = await http.get(first.json()["status_url"])
        assert pending.status_code == 200, pending.text
        assert pending.json()["state"] == "processing" and not pending.json()["indexed"]
        assert pending.json()["job_id"] == "post-api-post-1-v1"
        assert_error(await http.get("/v1/posts/api-post-1"), 404)
        async with spool_worker(client, s):
            # Handed to the post's workflow, which starts the publishing job once it runs.
            await eventually(lambda: job_exists(client, "post-api-post-1-v1"), "the job")
            await client.get_workflow_handle("post-api-post-1-v1").result()
            third = await http.post("/v1/posts", headers=AUTH, json=post)
            assert third.status_code == 202 and third.json()["job_id"] == "post-api-post-1-v1"
        author = (await http.get("/v1/authors/api-author")).json()
        assert author == {"author_id": "api-author", "post_count": 1}
        got = (await http.get("/v1/posts/api-post-1")).json()
        assert got["title"] == "Durable kittens" and got["indexed"] and got["version"] == 1
        assert (await http.get(first.json()["status_url"])).json() == got
        found = (await http.get("/v1/posts/search", params={"q": "kittens"})).json()
        assert [p["post_id"] for p in found["results"]] == ["api-post-1"]
        odd = await http.get("/v1/posts/search", params={"q": '"*) OR NEAR('})
        assert odd.status_code == 200
        assert_error(await http.get("/v1/posts/missing"), 404)
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text


async def test_readyz_is_503_when_a_dependency_is_down(client, settings, tmp_path):
    s = api_settings(settings, elasticsearch_url="http://127.0.0.1:9")  # nothing listens
    async with api_client(s, client) as http:
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["index"] != "ok"
        assert r.json()["checks"]["temporal"] == "ok"


def test_video_view_links_streaming_only_when_recorded():
    """hls_url and storyboard_url come from the row's keys, and a row from before the
    streaming columns existed (no such keys at all) is read too."""
    before = {"video_id": "v1", "status": "ready"}
    view = build_view("v1", before, None)
    assert view.hls_url is None and view.storyboard_url is None
    made = {
        **before,
        "hls_key": "videos/v1/hls/master.m3u8",
        "storyboard_key": "videos/v1/storyboard/storyboard.vtt",
    }
    view = build_view("v1", made, None)
    assert view.hls_url == "/v1/videos/v1/hls/master.m3u8"
    assert view.storyboard_url == "/v1/videos/v1/storyboard.vtt"
    unset = {**before, "hls_key": None, "storyboard_key": None}
    assert build_view("v1", unset, None).hls_url is None


def test_parse_range():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-5", 100) == (95, 99)
    assert parse_range("bytes=50-1000", 100) == (50, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None  # multi-range: whole file
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=9-2", 100) is None
    with pytest.raises(Exception, match="not satisfiable"):
        parse_range("bytes=100-", 100)


async def test_on_s3_uploads_stream_to_the_store_and_media_is_served_or_redirected(
    client, settings, clip, s3_settings_factory
):
    """Nothing touches a local disk: the upload goes to the bucket, the worker reads and
    writes the bucket, the API serves ranges from it, or redirects to a presigned URL."""
    s = api_settings(s3_settings_factory(settings))
    async with api_client(s, client) as http:
        r = await http.post(
            "/v1/videos",
            headers=AUTH,
            data={"captions": "false"},
            files={"file": ("c.mp4", clip.read_bytes(), "video/mp4")},
        )
        assert r.status_code == 202, r.text
        video_id = r.json()["video_id"]
        async with spool_worker(client, s):
            v = await wait_video(http, video_id)
        assert v["state"] == "ready", v
        storage = open_storage(s)
        stored = storage.read_bytes(rendition_key(video_id, "240p"))
        part = await http.get(v["renditions"][0]["url"], headers={"Range": "bytes=5-104"})
        assert part.status_code == 206 and part.content == stored[5:105]
        assert part.headers["content-range"] == f"bytes 5-104/{len(stored)}"
    assert not s.resolved_storage_dir.exists()  # the local directory was never used

    redirecting = s.model_copy(update={"media_redirect": True, "presigned_url_seconds": 60})
    async with api_client(redirecting, client) as http:
        r = await http.get(v["renditions"][0]["url"])
        assert r.status_code == 307 and r.headers["cache-control"] == "private, no-store"
        location = r.headers["location"]
        assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location
        # The page may load media from the store the redirects point at, and from no other.
        store = "{0.scheme}://{0.netloc}".format(urlsplit(location))
        policy = (await http.get("/")).headers["content-security-policy"]
        assert f"media-src 'self' blob: {store};" in policy, policy
    async with httpx.AsyncClient(timeout=60) as direct:
        fetched = await direct.get(location, headers={"Range": "bytes=0-99"})
    assert fetched.status_code == 206 and fetched.content == stored[:100]
