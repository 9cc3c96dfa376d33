"""Every timeout and retry policy, in one place, named by step: the policy of step ``poster``
is POSTER, of ``package-720p`` PACKAGE (the step's name without its ``-{suffix}``, in
capitals; docs/ARCHITECTURE.md, step table).

Workflow code: pure values only. Changing a value here changes running workflows at their
next activity, which is safe; changing the *set* of activities a workflow runs is not (see
the replay tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio.common import Priority, RetryPolicy, VersioningBehavior
from temporalio.workflow import ActivityCancellationType

from spool.models import defaults
from spool.models.common import INVALID_POST, INVALID_VIDEO

# Errors that no retry can fix (activities also raise them as non-retryable).
NON_RETRYABLE = [INVALID_POST, INVALID_VIDEO]

# Worker Versioning (docs/deploys.md): a versioned worker's runs stay on the Worker
# Deployment version that started them. A video job is minutes to hours of steps that one
# version's code agrees on end to end (chunk layout, ladder, playlists), so a deploy never
# changes a job midway. Blog publishes, deletions and the sweep are pinned too: a behaviour
# declared per workflow (@workflow.defn) is sent by unversioned workers as well, and the
# server refuses their workflow tasks, so one behaviour for every workflow of a versioned
# worker is what keeps unversioned setups working. A pinned publish ends on the code it
# started on; its version drains when its last publish ends (index retries included).
PINNED_RUNS = VersioningBehavior.PINNED


@dataclass(frozen=True)
class StepPolicy:
    start_to_close: timedelta
    retry: RetryPolicy
    schedule_to_close: timedelta | None = None
    heartbeat: timedelta | None = None
    # Heavy steps: a cancel waits until ffmpeg/Whisper has really stopped, so a cancelled job
    # leaves no process running and nothing half-written behind.
    wait_for_cancel: bool = False


def _retry(
    initial: float = 1.0,
    maximum: float = 60.0,
    attempts: int = 0,
) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=initial),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=maximum),
        maximum_attempts=attempts,
        non_retryable_error_types=NON_RETRYABLE,
    )


# --- blog -------------------------------------------------------------------------------
# Indexing may be down for hours: retry with capped backoff for up to a day (configurable per
# job through BlogPublishInput.index_retry_seconds).
INDEX_RETRY_SECONDS_DEFAULT = defaults.INDEX_RETRY_SECONDS
INDEX_POST = StepPolicy(
    start_to_close=timedelta(seconds=30),
    retry=_retry(initial=1.0, maximum=300.0),
    schedule_to_close=timedelta(seconds=INDEX_RETRY_SECONDS_DEFAULT),
)
# Database writes: short, and a lost worker is retried after start_to_close.
RECORD_POST_FOR_AUTHOR = StepPolicy(
    start_to_close=timedelta(seconds=10),
    retry=_retry(initial=1.0, maximum=60.0),
    schedule_to_close=timedelta(hours=24),
)
# Fans out to every follower, heartbeating after each delivery: a lost worker is noticed
# by the heartbeat timeout in seconds, however long the whole fan-out may take.
NOTIFY_FOLLOWERS = StepPolicy(
    start_to_close=timedelta(minutes=30),
    retry=_retry(initial=1.0, maximum=300.0),
    schedule_to_close=timedelta(hours=24),
    heartbeat=timedelta(seconds=15),
)


# --- a post's life (workflows/posts.py) ------------------------------------------------------
# An unpublish or delete: the same bounds as the publish's steps it undoes, each retrying on its
# own (an index outage never holds the count back).
RECORD_POST_STATE = RECORD_POST_FOR_AUTHOR
RETRACT_POST = INDEX_POST
# One row read as a run of the post's workflow starts: every operation waits for it.
READ_POST_FENCE = StepPolicy(
    start_to_close=timedelta(seconds=10),
    retry=_retry(initial=1.0, maximum=30.0),
)


def index_post_policy(retry_seconds: int | None) -> StepPolicy:
    if not retry_seconds:
        return INDEX_POST
    return replace(INDEX_POST, schedule_to_close=timedelta(seconds=retry_seconds))


def activity_options(policy: StepPolicy) -> dict:
    """Keyword arguments for ``workflow.execute_activity*``."""
    options: dict = {
        "start_to_close_timeout": policy.start_to_close,
        "retry_policy": policy.retry,
    }
    if policy.schedule_to_close is not None:
        options["schedule_to_close_timeout"] = policy.schedule_to_close
    if policy.heartbeat is not None:
        options["heartbeat_timeout"] = policy.heartbeat
    if policy.wait_for_cancel:
        options["cancellation_type"] = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
    return options


# --- video ------------------------------------------------------------------------------
# Heavy steps heartbeat about once a second; a worker that stops heartbeating (killed, lost)
# is noticed after VIDEO_HEARTBEAT and the step is retried on another worker.
VIDEO_HEARTBEAT = timedelta(seconds=10)

# A fetch resumes within an attempt after a dropped connection, and a retry resumes from its
# heartbeat: a few attempts cover a server that is down for a while. Its own deadline
# (SPOOL_SOURCE_FETCH_DEADLINE_SECONDS) ends an attempt well before start_to_close.
FETCH_SOURCE = StepPolicy(
    start_to_close=timedelta(hours=3),
    retry=_retry(initial=2.0, maximum=60.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
PROBE = StepPolicy(
    start_to_close=timedelta(minutes=5),
    retry=_retry(initial=1.0, maximum=30.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
POSTER = StepPolicy(
    start_to_close=timedelta(minutes=10),
    retry=_retry(initial=1.0, maximum=60.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
EXTRACT_AUDIO = StepPolicy(
    start_to_close=timedelta(hours=2),
    retry=_retry(initial=1.0, maximum=60.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
# Whisper failures are mostly permanent (model missing, unreadable audio): few attempts.
TRANSCRIBE = StepPolicy(
    start_to_close=timedelta(hours=8),
    retry=_retry(initial=1.0, maximum=60.0, attempts=3),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
# --- chunked encoding (docs/pipelines.md) ------------------------------------------------
# Light: the worker's settings and arithmetic.
PLAN = StepPolicy(
    start_to_close=timedelta(seconds=30),
    retry=_retry(initial=1.0, maximum=30.0, attempts=5),
)
# One time chunk of every rendition: at most SPOOL_CHUNK_SECONDS of source, so far shorter
# than a whole rendition; a lost worker is noticed by the heartbeat and only this chunk
# is done again.
ENCODE = StepPolicy(
    start_to_close=timedelta(hours=2),
    retry=_retry(initial=1.0, maximum=60.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
# The whole source's AAC track, once.
AUDIO = StepPolicy(
    start_to_close=timedelta(hours=2),
    retry=_retry(initial=1.0, maximum=60.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
# Join one rendition's chunks with the audio and cut its HLS segments: stream copy only.
PACKAGE = StepPolicy(
    start_to_close=timedelta(hours=1),
    retry=_retry(initial=1.0, maximum=60.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
STORYBOARD = StepPolicy(
    start_to_close=timedelta(minutes=30),
    retry=_retry(initial=1.0, maximum=60.0, attempts=5),
    heartbeat=VIDEO_HEARTBEAT,
    wait_for_cancel=True,
)
# The order a media worker takes its tasks in, by Temporal priority key (1 first, 5 last; a
# task without one has 3). Every short step of any job (probe, poster, packages, storyboard:
# seconds each, and each unblocks its job) goes before the encodes. Among a job's encodes the
# long ones go first and the short ones last, so the last tasks to start on a set of hosts
# are the shortest and the hosts end together: longest first (docs/pipelines.md, chunks).
# Without priorities the server hands out a job's chunks in no particular order: with two
# hosts, one could end a whole chunk after the other.
EARLY_ENCODE = Priority(priority_key=4)
LATE_ENCODE = Priority(priority_key=5)
# A job that plays before it is ready (docs/pipelines.md): its short first chunks, in order,
# and its audio track go before anything else, since its first pictures wait for them.
PLAYABLE_FIRST = Priority(priority_key=2)
# An encode at least this share of the job's longest chunk is long.
LONG_CHUNK_SHARE = 0.75
# The audio track of N seconds of source costs about as much as a chunk of this share of N
# seconds (bench/cluster.py, 1080p ladder: 1.8 s for a minute, 9.3 s for an 8.3 s chunk):
# a clip's audio is a short task, a film's a long one.
AUDIO_COST_SHARE = 0.03


def encode_priority(seconds: float, longest: float) -> Priority:
    """A chunk's priority from its length and the job's longest chunk's."""
    return EARLY_ENCODE if seconds >= LONG_CHUNK_SHARE * longest else LATE_ENCODE


def audio_priority(source_seconds: float, longest: float) -> Priority:
    """The audio track's priority, weighed as the chunk it costs as much as."""
    return encode_priority(source_seconds * AUDIO_COST_SHARE, longest)


# The audio rendition (stream copy of the AAC track) and the master playlist, once every
# variant is stored. A cancel waits for it to end (it has no heartbeat to hear the cancel
# by): a job that has ended wrote its last object, so deleting the video leaves none behind.
HLS = StepPolicy(
    start_to_close=timedelta(minutes=10),
    retry=_retry(initial=1.0, maximum=60.0, attempts=10),
    wait_for_cancel=True,
)

# The live playlists, as the chunks done in order reach further (the first publish also
# cuts the audio track): like the master playlist.
PLAYABLE = HLS

# Database writes and the owner's notification: short each, retried for a day.
RECORD = StepPolicy(
    start_to_close=timedelta(seconds=30),
    retry=_retry(initial=1.0, maximum=60.0),
    schedule_to_close=timedelta(hours=24),
)
RECORD_CAPTIONS = RECORD
NOTIFY = StepPolicy(
    start_to_close=timedelta(minutes=2),
    retry=_retry(initial=1.0, maximum=300.0),
    schedule_to_close=timedelta(hours=24),
)
ANNOUNCE_CAPTIONS = NOTIFY
ANNOUNCE_PLAYABLE = NOTIFY


def captions_step_policy(policy: StepPolicy, max_attempts: int | None) -> StepPolicy:
    """A captions step with the job's own bound on attempts (tests use a short one)."""
    if not max_attempts:
        return policy
    return replace(policy, retry=_retry(initial=0.5, maximum=2.0, attempts=max_attempts))


# --- deleting a video (workflows/deletion.py) ---------------------------------------------
# Cancels the video's job and polls until it has stopped, heartbeating; the wait's own end
# (StopJobInput.terminate_after, at most a day: SPOOL_VIDEO_DELETE_STOP_WAIT_SECONDS)
# terminates a job that does not stop, so the activity's timeout is past it.
STOP_JOB = StepPolicy(
    start_to_close=timedelta(hours=25),
    retry=_retry(initial=1.0, maximum=60.0),
    heartbeat=VIDEO_HEARTBEAT,
)
# A page of the listing at a time, heartbeating: a lost worker is noticed in seconds and the
# next attempt deletes what is left. Retried until it succeeds (a store down is waited out):
# a deletion that was accepted must end with nothing left.
DELETE_OBJECTS = StepPolicy(
    start_to_close=timedelta(hours=2),
    retry=_retry(initial=1.0, maximum=300.0),
    heartbeat=VIDEO_HEARTBEAT,
)
MARK_DELETING = RECORD
DELETE_RECORDS = StepPolicy(
    start_to_close=timedelta(seconds=60),
    retry=_retry(initial=1.0, maximum=300.0),
)
ANNOUNCE_DELETED = NOTIFY

# --- housekeeping on Temporal Schedules (workflows/housekeeping.py, spool/schedules.py) ---
# One listing of the store's unfinished writes; a store that is down fails the sweep after a
# few tries and the next hour's sweep tries again.
SWEEP = StepPolicy(
    start_to_close=timedelta(minutes=10),
    retry=_retry(initial=5.0, maximum=60.0, attempts=3),
)
# Ending the resumable uploads past their expiry: their rows and what the store holds.
SWEEP_UPLOADS = SWEEP
