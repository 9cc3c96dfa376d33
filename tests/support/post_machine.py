"""What the stateful post test drives and checks: a stack (its own event loop in a thread, as
Hypothesis's state machines are synchronous; a worker process it can SIGKILL), the model of
what each post should be, and the invariants of docs/posts.md read from the real stores."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from spool.config import Settings
from spool.db import get_engine
from spool.db.blog import authors, posts
from spool.search import open_index
from spool.service.post_ops import PostRefused
from spool.service.posts import PostService
from spool.temporal import connect
from tests.support.paths import REPO
from tests.support.posts import notified
from tests.support.processes import spool_env, spool_variables

# How long the stores may take to reach what the model says once the operations stop.
QUIESCENCE_SECONDS = 90.0


@dataclass
class Expected:
    """What one post should be once every effect has landed."""

    author_id: str
    state: str = "none"  # none / scheduled / published / unpublished / deleted
    version: int = 0
    # A publish acknowledged by the post's workflow (it started the publishing job, whose
    # notify step then runs); a publish handed over durably may be overtaken before it runs.
    surely_announced: bool = False
    maybe_announced: bool = False
    # What was sent and answered, in order: printed beside a violation.
    sent: list[str] = field(default_factory=list)


@dataclass
class Faults:
    """What a run did: the figures the test and the soak print."""

    operations: int = 0
    kills: int = 0
    unacknowledged: int = 0  # handed over durably: no worker answered in time
    violations: int = 0
    refusals: dict[str, int] = field(default_factory=dict)

    def note(self, outcome: Outcome) -> None:
        self.operations += 1
        if outcome.refused:
            self.refusals[outcome.refused] = self.refusals.get(outcome.refused, 0) + 1
        elif outcome.accepted is not None and outcome.accepted.state is None:
            self.unacknowledged += 1


@dataclass(frozen=True)
class Outcome:
    refused: str | None = None  # the kind of refusal (PostNotFound, PostConflict, ...)
    accepted: Any = None  # PostAccepted or PostOpAccepted

    @property
    def unacknowledged(self) -> bool:
        """Handed over durably, so a refusal, if any, was not answered."""
        return self.accepted is not None and self.accepted.state is None

    def summary(self) -> str:
        if self.refused:
            return f"refused {self.refused}"
        if self.unacknowledged:
            return "accepted, not yet acknowledged"
        return f"applied: {self.accepted.state}" + (" (absorbed)" if self.absorbed else "")

    @property
    def absorbed(self) -> bool:
        return bool(getattr(self.accepted, "absorbed", False))

    def refused_as(self, kind: str | None) -> bool:
        return self.refused == kind or (self.refused is None and self.unacknowledged)


class Stack:
    """The test's Temporal client and post service on a loop of their own, and one worker
    process (``worker.py --queue pipeline``) that can be killed and started again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self.run(connect(settings, wait_seconds=30))
        self.engine = get_engine(settings)
        self.index = open_index(settings)
        self.service = PostService(self.client, settings, self.engine, self.index)
        self.worker: subprocess.Popen | None = None
        self.starts = 0

    def run(self, work: Coroutine[Any, Any, Any], within: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(within)

    def start_worker(self) -> None:
        env = {
            **spool_env(self.settings),
            **spool_variables(
                database_url=self.settings.database_url,
                elasticsearch_url=self.settings.elasticsearch_url,
                elasticsearch_index=self.settings.elasticsearch_index,
            ),
        }
        self.starts += 1
        log = Path(self.settings.data_dir) / f"worker-{self.starts}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            self.worker = subprocess.Popen(
                [sys.executable, "worker.py", "--queue", "pipeline", "--grace-seconds", "1"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # Its log says when it is ready; a worker's log is kept to read after a failure.
        deadline = time.monotonic() + 120
        while "worker ready" not in log.read_text():
            assert self.worker.poll() is None, "worker exited:\n" + log.read_text()
            assert time.monotonic() < deadline, "worker not ready:\n" + log.read_text()
            time.sleep(0.1)

    def kill_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.kill(self.worker.pid, signal.SIGKILL)
            self.worker.wait(30)
        self.worker = None

    def close(self) -> None:
        self.kill_worker()
        self.run(asyncio.sleep(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def attempt(call) -> Outcome:
    try:
        return Outcome(accepted=call())
    except PostRefused as exc:
        return Outcome(refused=exc.kind)


def violations(stack: Stack, expected: dict[str, Expected], followers: list[str]) -> list[str]:
    """Every way the stores differ from the model now (empty: all invariants hold)."""
    found: list[str] = []
    found += _count_violations(stack, expected)
    found += _record_violations(stack, expected)
    found += _index_violations(stack, expected)
    found += _notice_violations(stack, expected, followers)
    return found


def _count_violations(stack: Stack, expected: dict[str, Expected]) -> list[str]:
    wanted: dict[str, int] = {}
    for post in expected.values():
        wanted.setdefault(post.author_id, 0)
        wanted[post.author_id] += post.state == "published"
    with stack.engine.connect() as conn:
        counts = dict(conn.execute(sa.select(authors.c.author_id, authors.c.post_count)).all())
    return [
        f"author {author}: post_count {counts.get(author, 0)}, published {n}"
        for author, n in wanted.items()
        if counts.get(author, 0) != n
    ]


def _record_violations(stack: Stack, expected: dict[str, Expected]) -> list[str]:
    with stack.engine.connect() as conn:
        rows = {
            r.post_id: r
            for r in conn.execute(sa.select(posts.c.post_id, posts.c.state, posts.c.version))
        }
    out = []
    for post_id, post in expected.items():
        row = rows.get(post_id)
        state = row.state if row is not None else "none"
        if state != post.state and not (post.state == "none" and state == "deleted"):
            out.append(f"{post_id}: recorded {state}, expected {post.state}")
        elif post.state == "published" and row.version != post.version:
            out.append(f"{post_id}: recorded v{row.version}, expected v{post.version}")
    return out


def _index_violations(stack: Stack, expected: dict[str, Expected]) -> list[str]:
    stack.index.refresh()
    out = []
    for post_id, post in expected.items():
        doc = stack.index.get(post_id)
        hits = stack.index.search(post_id, 50)  # ids are one word, in every title
        if post.state == "published":
            if doc is None or doc.version != post.version:
                out.append(f"{post_id}: indexed {doc and doc.version}, expected v{post.version}")
            elif post_id not in hits:
                out.append(f"{post_id}: published but not found by search")
        elif doc is not None or post_id in hits:
            out.append(f"{post_id}: {post.state} but in the index")
    return out


def _notice_violations(
    stack: Stack, expected: dict[str, Expected], followers: list[str]
) -> list[str]:
    out = []
    for post_id, post in expected.items():
        told = notified(stack.settings, post_id)
        if len(told) != len(set(told)):
            out.append(f"{post_id}: a follower told twice: {told}")
        if post.surely_announced and told != sorted(followers):
            out.append(f"{post_id}: announced to {told}, expected {sorted(followers)}")
        if not (post.surely_announced or post.maybe_announced) and told:
            out.append(f"{post_id}: never published, yet announced to {told}")
        if told and told != sorted(followers):
            out.append(f"{post_id}: announced to some followers only: {told}")
    return out


def settle(stack: Stack, expected: dict[str, Expected], followers: list[str]) -> list[str]:
    """Wait (bounded) until no invariant is violated; the violations left at the deadline."""
    deadline = time.monotonic() + QUIESCENCE_SECONDS
    while True:
        found = violations(stack, expected, followers)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)
