"""The stateful machine of the post lifecycle property (tests/test_post_properties.py) and
the soak (bench/lifecycle.py): random operations on several posts of several authors, some at
once on the same post, the worker SIGKILLed at random points, the model checked at teardown.

The model is docs/posts.md's answers: a 202 with a state was applied in order; a 202 without
one (no worker answered in time) is applied once, in the order accepted, by the same rules, so
the model applies it at once too; a refusal changed nothing. Any other answer (an error) fails
the step: with Temporal up, the service must never answer one. Each post's requests and
answers are printed beside a violation."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from spool.models import Post, PostOpKind
from tests.support.post_machine import Expected, Faults, Outcome, Stack, attempt, settle

AUTHORS = ["ada", "bo"]
POSTS_PER_AUTHOR = 2
FOLLOWERS = ["f1", "f2"]
POST_NUMBERS = st.integers(0, len(AUTHORS) * POSTS_PER_AUTHOR - 1)
GONE = ("none", "deleted")


def far_time() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


def post_life(stack: Stack, faults: Faults) -> type[RuleBasedStateMachine]:
    """The machine, bound to the stack under test and the figures it keeps."""

    class PostLife(RuleBasedStateMachine):
        @initialize()
        def fresh_posts(self) -> None:
            run = uuid.uuid4().hex[:6]
            self.expected = {
                f"pm{run}{author}{n}": Expected(author_id=f"{author}{run}")
                for author in AUTHORS
                for n in range(POSTS_PER_AUTHOR)
            }

        def _id(self, n: int) -> str:
            return sorted(self.expected)[n]

        def _publish(self, post_id: str, version: int, publish_at: str | None = None):
            post = Post(
                post_id=post_id,
                author_id=self.expected[post_id].author_id,
                title=f"Post {post_id} version {version}",
                body=f"The body of {post_id}.",
                version=version,
                followers=list(FOLLOWERS),
            )
            return attempt(lambda: stack.run(stack.service.publish(post, publish_at)))

        def _operate(self, kind: PostOpKind, post_id: str, publish_at: str | None = None):
            return attempt(lambda: stack.run(stack.service.operate(kind, post_id, publish_at)))

        def _note(self, post_id: str, what: str, outcome: Outcome) -> None:
            faults.note(outcome)
            self.expected[post_id].sent.append(f"{what}: {outcome.summary()}")

        def _published(self, post_id: str, outcome: Outcome, version: int, state: str):
            what = "schedule" if state == "scheduled" else "publish"
            self._note(post_id, f"{what} v{version}", outcome)
            assert outcome.refused is None, (post_id, outcome)
            post = self.expected[post_id]
            post.state, post.version = state, version
            if state == "published":
                post.surely_announced |= not outcome.unacknowledged
                post.maybe_announced |= outcome.unacknowledged

        @rule(n=POST_NUMBERS, edit=st.booleans())
        def publish(self, n: int, edit: bool) -> None:
            post_id = self._id(n)
            post = self.expected[post_id]
            version = 1 if post.state in GONE else post.version + (1 if edit else 0)
            self._published(post_id, self._publish(post_id, version), version, "published")

        @rule(n=POST_NUMBERS)
        def schedule(self, n: int) -> None:
            """A publish two days ahead: neither counted, indexed nor announced."""
            post_id = self._id(n)
            post = self.expected[post_id]
            version = 1 if post.state in GONE else post.version + 1
            outcome = self._publish(post_id, version, far_time())
            self._published(post_id, outcome, version, "scheduled")

        @rule(n=POST_NUMBERS)
        def unpublish(self, n: int) -> None:
            post_id = self._id(n)
            post = self.expected[post_id]
            outcome = self._operate(PostOpKind.UNPUBLISH, post_id)
            self._note(post_id, "unpublish", outcome)
            if post.state in GONE:
                assert outcome.refused_as("PostNotFound"), (post_id, post.state, outcome)
            else:
                assert outcome.refused is None, (post_id, post.state, outcome)
                post.state = "unpublished"

        @rule(n=POST_NUMBERS)
        def delete(self, n: int) -> None:
            post_id = self._id(n)
            post = self.expected[post_id]
            outcome = self._operate(PostOpKind.DELETE, post_id)
            self._note(post_id, "delete", outcome)
            if post.state == "none":
                assert outcome.refused_as("PostNotFound"), (post_id, outcome)
            elif post.state == "deleted":
                # Absorbed by a run that remembers it, or unknown to a new one.
                assert outcome.refused in (None, "PostNotFound"), (post_id, outcome)
            else:
                assert outcome.refused is None, (post_id, post.state, outcome)
                post.state = "deleted"

        @rule(n=POST_NUMBERS, cancel=st.booleans())
        def reschedule_or_cancel(self, n: int, cancel: bool) -> None:
            post_id = self._id(n)
            post = self.expected[post_id]
            kind = PostOpKind.CANCEL_SCHEDULE if cancel else PostOpKind.SCHEDULE
            outcome = self._operate(kind, post_id, None if cancel else far_time())
            self._note(post_id, str(kind), outcome)
            if post.state == "scheduled":
                assert outcome.refused is None, (post_id, outcome)
                post.state = "unpublished" if cancel else "scheduled"
            elif post.state in GONE:
                assert outcome.refused_as("PostNotFound"), (post_id, outcome)
            elif post.state == "published":
                assert outcome.refused_as("PostConflict"), (post_id, outcome)

        @rule(n=POST_NUMBERS)
        def concurrent_edits(self, n: int) -> None:
            """Two versions at once, each sent twice: whichever lands first, the newer one
            is what the post is, and each follower is told at most once."""
            post_id = self._id(n)
            post = self.expected[post_id]
            base = 0 if post.state in GONE else post.version
            versions = [base + 1, base + 2, base + 1, base + 2]
            with ThreadPoolExecutor(4) as pool:
                outcomes = list(pool.map(lambda v: self._publish(post_id, v), versions))
            for version, outcome in zip(versions, outcomes, strict=True):
                self._note(post_id, f"publish v{version} (at once)", outcome)
                assert outcome.refused in (None, "PostConflict"), outcome
            post.state, post.version = "published", base + 2
            post.maybe_announced = True

        @rule()
        def kill_worker(self) -> None:
            faults.kills += 1
            for post in self.expected.values():
                post.sent.append("(worker killed)")
            stack.kill_worker()
            stack.start_worker()

        @invariant()
        def worker_running(self) -> None:
            assert stack.worker is not None and stack.worker.poll() is None

        def teardown(self) -> None:
            if not hasattr(self, "expected"):
                return
            left = settle(stack, self.expected, FOLLOWERS)
            faults.violations += len(left)
            sent = [
                f"{post_id}: " + "; ".join(post.sent)
                for post_id, post in self.expected.items()
                if any(line.startswith(post_id) for line in left)
            ]
            assert not left, "\n".join([*left, "what was sent:", *sent])

    return PostLife
