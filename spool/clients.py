"""How a client program reaches Spool's jobs: two transports, one answer.

``DirectClient`` goes straight to the stack with its credentials: the upload into object
storage, the job through Temporal, the view from Temporal and the database, all with the
service layer (spool/service/), the code the API itself runs. ``ApiClient`` goes through a
Spool API over HTTP and needs nothing else. Both answer with the API's views
(spool/service/views.py): a video's job is a ``VideoView``, a post version's publishing job a
``PostJobView``, with the same keys and values whichever way they were read, URLs included
(paths under the API's base). starter.py prints them.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client

from spool.config import Settings
from spool.models import InvalidPostError, Post, PostOpKind, post_version_of, video_id_of
from spool.service import JobNotFound, PostService, VideoService, jobs
from spool.service.deletion import VideoNotFound, delete_video
from spool.service.post_ops import POST_NOT_FOUND, OutcomeUnknown, PostRefused
from spool.service.posts import publishing_job
from spool.service.views import JobView, PostJobView, PostOpAccepted, VideoDeleting, VideoView

# A job as a client sees it: the view of its kind; a job of neither kind (the captions child,
# a workflow started by other means) is the plain job view, from Temporal only.
AnyJobView = VideoView | PostJobView | JobView
# The API answers an upload once it is stored: a long read, and no limit on writing the file.
API_TIMEOUT = httpx.Timeout(30.0, write=None, read=300.0)


class Refused(Exception):
    """The request was refused as it is: bad input, a missing key, a job that has ended."""


class PostOpRefused(Refused):
    """The post's workflow (or the API) refused an operation on a post; nothing changed.
    ``not_found``: no such post, or it was deleted."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.not_found = kind == POST_NOT_FOUND


class Unreachable(Exception):
    """What the client talks to (the API, Temporal, the database) could not answer."""


class JobClient(Protocol):
    async def start_blog(self, post: Post) -> str: ...

    async def operate_post(
        self, kind: PostOpKind, post_id: str, publish_at: str | None = None
    ) -> PostOpAccepted: ...

    async def start_video(
        self, path: Path, *, owner_id: str, captions: bool, renditions: list[str] | None
    ) -> str: ...

    async def view(self, job_id: str) -> AnyJobView: ...

    async def cancel(self, job_id: str) -> None: ...

    async def delete_video(self, video_id: str) -> VideoDeleting: ...

    async def aclose(self) -> None: ...


class DirectClient:
    """Jobs through the service layer: Temporal, object storage and the database."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._videos: VideoService | None = None
        self._posts: PostService | None = None

    async def start_blog(self, post: Post) -> str:
        """Publish through the post's own workflow, as the API does."""
        try:
            accepted = await (await self._post_service()).publish(post)
        except InvalidPostError as exc:
            raise Refused(f"invalid post: {exc}") from None
        except PostRefused as exc:
            raise PostOpRefused(exc.kind, exc.message) from None
        except OutcomeUnknown as exc:
            raise Unreachable(str(exc)) from None
        return accepted.job_id

    async def operate_post(
        self, kind: PostOpKind, post_id: str, publish_at: str | None = None
    ) -> PostOpAccepted:
        try:
            return await (await self._post_service()).operate(kind, post_id, publish_at)
        except InvalidPostError as exc:
            raise Refused(str(exc)) from None
        except PostRefused as exc:
            raise PostOpRefused(exc.kind, exc.message) from None
        except OutcomeUnknown as exc:
            raise Unreachable(str(exc)) from None

    async def start_video(
        self, path: Path, *, owner_id: str, captions: bool, renditions: list[str] | None
    ) -> str:
        from spool.ingest import ingest_video

        try:
            inp = await asyncio.to_thread(
                ingest_video,
                self.settings,
                path,
                owner_id=owner_id,
                captions=captions,
                renditions=renditions,
            )
        except ValueError as exc:
            raise Refused(str(exc)) from None
        size = (await asyncio.to_thread(path.stat)).st_size
        started = await jobs.start_video(
            self.client, self.settings, inp, file_name=path.name, size_bytes=size
        )
        return started.job_id

    async def view(self, job_id: str) -> AnyJobView:
        """The job's view; raises JobNotFound when nothing knows it."""
        found: VideoView | PostJobView | None
        if (video_id := video_id_of(job_id)) is not None:
            found = await (await self._video_service()).view(video_id)
        elif (post := post_version_of(job_id)) is not None:
            found = await publishing_job(self.client, *post)
        else:
            return await jobs.status(self.client, job_id, wait_for_worker=False)
        if found is None:
            raise JobNotFound(job_id)
        return found

    async def cancel(self, job_id: str) -> None:
        await jobs.cancel(self.client, job_id)

    async def delete_video(self, video_id: str) -> VideoDeleting:
        """Raises VideoNotFound for a video nothing knows."""
        engine = (await self._video_service()).engine
        return await delete_video(self.client, self.settings, engine, video_id)

    async def aclose(self) -> None:
        """Nothing to close: the Temporal client and the database engine are the process's."""

    async def _video_service(self) -> VideoService:
        """Opened on first use: only a video's view needs the database's record."""
        if self._videos is None:
            self._videos = VideoService(self.client, await self._engine())
        return self._videos

    async def _post_service(self) -> PostService:
        if self._posts is None:
            from spool.search import open_index

            engine = await self._engine()
            self._posts = PostService(self.client, self.settings, engine, open_index(self.settings))
        return self._posts

    async def _engine(self):
        from spool.db import get_engine
        from spool.db.migrations import SchemaError

        try:
            return await asyncio.to_thread(get_engine, self.settings)
        except (SQLAlchemyError, SchemaError) as exc:
            raise Unreachable(f"cannot open the database: {exc}") from None


class ApiClient:
    """Jobs through a Spool API: ``base`` is its address, ``key`` an API key (writes need
    one; reads too when the server's reads are private)."""

    def __init__(self, base: str, key: str | None) -> None:
        self.base = base.rstrip("/")
        self.key = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.AsyncClient(base_url=self.base, timeout=API_TIMEOUT, headers=headers)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def start_blog(self, post: Post) -> str:
        fields = {k: v for k, v in asdict(post).items() if k != "fence"}
        answer = await self._send("post", "POST", "/v1/posts", json=fields)
        return answer.json()["job_id"]

    async def operate_post(
        self, kind: PostOpKind, post_id: str, publish_at: str | None = None
    ) -> PostOpAccepted:
        if not self.key:
            raise Refused(f"writes through {self.base} need an API key: set SPOOL_API_KEY")
        path = f"/v1/posts/{quote(post_id, safe='')}"
        method, path, body = {
            PostOpKind.UNPUBLISH: ("POST", f"{path}/unpublish", None),
            PostOpKind.DELETE: ("DELETE", path, None),
            PostOpKind.SCHEDULE: ("PUT", f"{path}/schedule", {"publish_at": publish_at}),
            PostOpKind.CANCEL_SCHEDULE: ("DELETE", f"{path}/schedule", None),
        }[kind]
        answer = await self._request(method, path, json=body)
        if answer.status_code in (404, 409):
            kind_name = POST_NOT_FOUND if answer.status_code == 404 else "PostConflict"
            raise PostOpRefused(kind_name, api_error(answer, status=False))
        return PostOpAccepted.model_validate(self._check("operation", answer).json())

    async def start_video(
        self, path: Path, *, owner_id: str, captions: bool, renditions: list[str] | None
    ) -> str:
        data = {"captions": "true" if captions else "false", "owner_id": owner_id}
        if renditions:
            data["renditions"] = ",".join(renditions)
        with path.open("rb") as fh:  # httpx streams the file part in chunks
            # The name is shown in the run's summary only; the API stores under its own key.
            files = {"file": (path.name, fh, "application/octet-stream")}
            answer = await self._send("upload", "POST", "/v1/videos", data=data, files=files)
        return answer.json()["job_id"]

    async def view(self, job_id: str) -> VideoView | PostJobView:
        """The job's view as the API answers it; raises JobNotFound when it knows no such job
        (the API serves video and post jobs only)."""
        if (video_id := video_id_of(job_id)) is not None:
            answer = await self._read(job_id, f"/v1/videos/{quote(video_id, safe='')}")
            return VideoView.model_validate(answer.json())
        if (post := post_version_of(job_id)) is not None:
            post_id, version = post
            path = f"/v1/posts/{quote(post_id, safe='')}/versions/{version}/job"
            return PostJobView.model_validate((await self._read(job_id, path)).json())
        raise JobNotFound(job_id)

    async def cancel(self, job_id: str) -> None:
        video_id = video_id_of(job_id)
        if video_id is None:
            raise Refused(f"{job_id}: the API cancels video jobs only")
        path = f"/v1/videos/{quote(video_id, safe='')}/job"
        answer = await self._request("DELETE", path)
        if answer.status_code == 404:
            raise JobNotFound(job_id)
        if answer.status_code == 409:
            raise Refused(f"{job_id}: {api_error(answer, status=False)}")
        self._check("cancel", answer)

    async def delete_video(self, video_id: str) -> VideoDeleting:
        """Raises VideoNotFound when the API knows no such video."""
        if not self.key:
            raise Refused(f"writes through {self.base} need an API key: set SPOOL_API_KEY")
        answer = await self._request("DELETE", f"/v1/videos/{quote(video_id, safe='')}")
        if answer.status_code == 404:
            raise VideoNotFound(video_id)
        return VideoDeleting.model_validate(self._check("delete", answer).json())

    async def _read(self, job_id: str, path: str) -> httpx.Response:
        answer = await self._request("GET", path)
        if answer.status_code == 404:
            raise JobNotFound(job_id)
        return self._check("read", answer)

    async def _send(self, noun: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not self.key:
            raise Refused(f"writes through {self.base} need an API key: set SPOOL_API_KEY")
        return self._check(noun, await self._request(method, path, **kwargs))

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the API at {self.base}: {exc}") from None

    def _check(self, noun: str, answer: httpx.Response) -> httpx.Response:
        """The answer when it is a success; else Refused (4xx) or Unreachable (5xx)."""
        if answer.is_success:
            return answer
        if answer.status_code < 500:
            raise Refused(f"{self.base} refused the {noun}: {api_error(answer)}")
        raise Unreachable(f"{self.base} could not serve the {noun}: {api_error(answer)}")


def api_error(answer: httpx.Response, *, status: bool = True) -> str:
    """The message of the API's one error body, after the status code."""
    try:
        message = answer.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = answer.text[:200]
    return f"{answer.status_code} {message}" if status else str(message)
