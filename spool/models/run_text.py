"""What an operator reads of a run in the Temporal UI (docs/observability.md, the Temporal UI):
the one-line summaries of a run and of each of its activities and timers, and the Markdown of
its static and current details.

Pure text from values, no I/O and no clock: the service layer builds a start's summary and
details with it, and workflow code builds its live details inside the sandbox, from its own
state only. Text a client chose (a file name, a post title) is cut to one short line, and in
Markdown its markup is escaped, so it can neither break the table nor add a link.
"""

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from spool.models.blog import BlogPublishStatus, Post
from spool.models.captions import CaptionsInput, CaptionsResult
from spool.models.common import StepState, StepStatus
from spool.models.lifecycle import VideoDeletionInput, VideoDeletionStatus
from spool.models.video import ProbeResult, VideoPipelineInput, VideoStatus

__all__ = [
    "Fact",
    "captions_details",
    "captions_job_details",
    "deletion_job_details",
    "chunk_summary",
    "deletion_details",
    "deletion_summary",
    "duration_text",
    "job_details",
    "markdown_text",
    "one_line",
    "package_summary",
    "post_details",
    "post_job_details",
    "post_summary",
    "size_text",
    "steps_table",
    "transcribe_summary",
    "url_origin",
    "utc_text",
    "video_details",
    "video_job_details",
    "video_summary",
]

SEP = " · "
NAME_CHARS = 80  # a file name or a title in a summary
ERROR_CHARS = 300  # one step's last error in the details table
LAST_TIMESTAMP = 253402300799  # 9999-12-31 23:59:59 UTC, the last a datetime can show
_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")
# A fact of a run's details: its label and its value, already Markdown.
Fact = tuple[str, str]


# --- words ------------------------------------------------------------------------------------


def one_line(text: object, limit: int = NAME_CHARS) -> str:
    """Client-given text as one line of at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def markdown_text(text: object, limit: int = NAME_CHARS) -> str:
    """Client-given text as one line of Markdown that shows exactly as written."""
    return _MARKUP.sub(r"\\\1", one_line(text, limit))


def size_text(size_bytes: int) -> str:
    """A size in decimal units, as a file manager shows it: ``4.2 MB``."""
    size = float(size_bytes)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size_bytes:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def duration_text(seconds: float) -> str:
    """``12.5 s``, ``4 min``, ``1 h 05 min``: as precise as a glance needs."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def utc_text(timestamp: float) -> str:
    """A moment as ``2026-12-07 09:00 UTC`` (seconds after the epoch beyond year 9999)."""
    if not 0 <= timestamp < LAST_TIMESTAMP:
        return f"{timestamp:.0f} s after the epoch"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def url_origin(url: str) -> str:
    """A URL's scheme, host and port only: its path and query may carry a token (the same
    part errors show, spool/fetch.py)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    return f"{scheme}://{host}" if rest else one_line(url.split("/", 1)[0], 40)


def ladder_text(renditions: Sequence[str] | None) -> str:
    return " ".join(renditions) if renditions else "every rung up to the source"


# --- a run's start ----------------------------------------------------------------------------


def video_summary(
    inp: VideoPipelineInput, file_name: str | None = None, size_bytes: int | None = None
) -> str:
    """``talk.mp4 · 4.2 MB · 720p 480p 360p``: what the job was handed and what it makes."""
    parts = [one_line(file_name) if file_name else _source_of(inp)]
    if size_bytes:
        parts.append(size_text(size_bytes))
    parts.append(ladder_text(inp.renditions))
    if not inp.captions:
        parts.append("no captions")
    return SEP.join(parts)


def video_details(
    inp: VideoPipelineInput, file_name: str | None = None, size_bytes: int | None = None
) -> str:
    """The start's facts of a video job, as Markdown."""
    facts: list[Fact] = [("video", f"`{inp.video_id}`"), ("owner", markdown_text(inp.owner_id))]
    if file_name:
        facts.append(("file", markdown_text(file_name)))
    if size_bytes:
        facts.append(("size", f"{size_text(size_bytes)} ({size_bytes:,} bytes)"))
    facts += [
        ("source", markdown_text(_source_of(inp), 200)),
        ("renditions", ladder_text(inp.renditions)),
        ("captions", f"Whisper, language {inp.language}" if inp.captions else "not requested"),
        ("duration", "known once the probe has run (current details)"),
    ]
    return _facts_markdown(f"Video job `video-{inp.video_id}`", facts)


def _source_of(inp: VideoPipelineInput) -> str:
    if inp.source_url:
        return "fetched from " + url_origin(inp.source_url)
    return "upload " + inp.source_key


def post_summary(post: Post, operation: str = "publish") -> str:
    """``publish “Hello” by ana · post p1 v2``."""
    title = one_line(post.title) if isinstance(post.title, str) and post.title else "(no title)"
    author = one_line(post.author_id, 40)
    return (
        f"{operation} “{title}” by {author}{SEP}post {one_line(post.post_id, 40)} v{post.version}"
    )


def post_details(post: Post, operation: str = "publish") -> str:
    """The start's facts of a post's job, as Markdown."""
    followers = (
        "the author's followers (read page by page)"
        if post.followers is None
        else f"{len(post.followers)} listed"
    )
    facts: list[Fact] = [
        ("operation", operation),
        ("post", f"`{markdown_text(post.post_id)}` version {post.version}"),
        ("title", markdown_text(post.title, 200)),
        ("author", markdown_text(post.author_id)),
        ("body", f"{len(post.body):,} characters" if isinstance(post.body, str) else "missing"),
        ("tags", markdown_text(" ".join(map(str, post.tags)), 200) if post.tags else "none"),
        ("followers", followers),
    ]
    return _facts_markdown(f"Post `{markdown_text(post.post_id)}` version {post.version}", facts)


def deletion_summary(video_id: str, delete_at: float | None) -> str:
    """``delete video abc now`` or ``delete video abc at 2026-12-07 09:00 UTC (retention)``."""
    when = "now" if delete_at is None else f"at {utc_text(delete_at)} (retention)"
    return f"delete video {video_id} {when}"


def deletion_details(inp: VideoDeletionInput) -> str:
    """The start's facts of a video's deletion, as Markdown."""
    waits = (
        "nothing: deletes at once"
        if inp.delete_at is None
        else f"{utc_text(inp.delete_at)} (a delete request ends the wait)"
    )
    facts: list[Fact] = [
        ("video", f"`{inp.video_id}`"),
        ("reason", inp.reason),
        ("waits until", waits),
        (
            "a running job",
            f"asked to cancel, terminated after {duration_text(inp.stop_wait_seconds)}",
        ),
        ("looked at again", f"{duration_text(inp.recheck_seconds)} after a job had to be stopped"),
    ]
    return _facts_markdown(f"Deletion of video `{inp.video_id}`", facts)


def captions_details(inp: CaptionsInput) -> str:
    """The start's facts of a video's captions child, as Markdown."""
    attempts = "the policy's" if inp.max_attempts is None else str(inp.max_attempts)
    facts: list[Fact] = [
        ("video", f"`{inp.video_id}`"),
        ("audio of", markdown_text(inp.source_key, 200)),
        ("language", inp.language),
        ("attempts per step", attempts),
    ]
    return _facts_markdown(f"Captions of video `{inp.video_id}`", facts)


# --- activities and timers --------------------------------------------------------------------


def chunk_summary(
    index: int, count: int, start: float, end: float, renditions: Iterable[str]
) -> str:
    """``encode chunk 3/8 · 24.0–32.0 s · 720p 480p 360p``: the chunk's index as in its
    activity id (from 0), its time in the source and what it encodes."""
    return SEP.join(
        (f"encode chunk {index}/{count}", f"{start:.1f}–{end:.1f} s", " ".join(renditions))
    )


def package_summary(rendition: str, chunks: int, with_audio: bool) -> str:
    """``package 720p · 8 chunks + audio``."""
    made_of = f"{chunks} chunk{'s' if chunks != 1 else ''}" + (" + audio" if with_audio else "")
    return f"package {rendition}{SEP}{made_of}"


def transcribe_summary(seconds: float, language: str) -> str:
    """``transcribe 4 min of audio · en``."""
    return f"transcribe {duration_text(seconds)} of audio{SEP}{language}"


# --- a run's live details ---------------------------------------------------------------------


def steps_table(steps: Iterable[StepState]) -> str:
    """The steps as the status query shows them: state, progress, and the last error (or why
    a step was skipped or cancelled)."""
    rows = ["| step | state | progress | last error or note |", "|---|---|---|---|"]
    for step in steps:
        progress = "" if step.percent is None else f"{step.percent:g} %"
        note = step.last_error or step.detail or ""
        rows.append(
            f"| {step.name} | {_state_text(step.state)} | {progress} "
            f"| {markdown_text(note, ERROR_CHARS)} |"
        )
    return "\n".join(rows)


def job_details(
    headline: str, facts: Sequence[Fact], steps: Iterable[StepState], error: str | None
) -> str:
    """A run's current details: what it is, its steps, and its error if it has one."""
    parts = [_facts_markdown(headline, facts), steps_table(steps)]
    if error:
        parts.append(f"**Last error:** {markdown_text(error, ERROR_CHARS)}")
    return "\n\n".join(parts)


def video_job_details(status: VideoStatus) -> str:
    """A video job's current details, from the same status its ``status`` query answers."""
    facts: list[Fact] = [("state", str(status.state)), ("source", _probed(status.probe))]
    running = sorted(status.step_shares.get("encode", {}))
    if running:
        facts.append(("chunks encoding", " ".join(running)))
    if status.renditions:
        facts.append(("renditions made", " ".join(r.name for r in status.renditions)))
    facts.append(("captions", str(status.captions_state)))
    return job_details(f"Video job `{status.job_id}`", facts, status.steps, _error_of(status))


def captions_job_details(video_id: str, language: str, result: CaptionsResult) -> str:
    facts: list[Fact] = [("state", str(result.state)), ("language", language)]
    if result.segment_count:
        facts.append(("segments", str(result.segment_count)))
    return job_details(
        f"Captions of video `{video_id}`",
        facts,
        result.steps,
        result.error or _last_step_error(result.steps),
    )


def post_job_details(status: BlogPublishStatus, post: Post | None = None) -> str:
    facts: list[Fact] = [
        ("state", str(status.state)),
        ("post", f"`{markdown_text(status.post_id)}` version {status.version}"),
    ]
    if post is not None:
        facts += [
            ("title", markdown_text(post.title, 200)),
            ("author", markdown_text(post.author_id)),
        ]
    return job_details(f"Post job `{status.job_id}`", facts, status.steps, _error_of(status))


def deletion_job_details(status: VideoDeletionStatus) -> str:
    facts: list[Fact] = [("state", str(status.state)), ("reason", status.reason)]
    if status.delete_at is not None:
        facts.append(("waits", f"until {utc_text(status.delete_at)}, or a delete request"))
    facts.append(("objects deleted", f"{status.objects_deleted:,}"))
    return job_details(
        f"Deletion of video `{status.video_id}`", facts, status.steps, _error_of(status)
    )


def _probed(probe: ProbeResult | None) -> str:
    if probe is None:
        return "not probed yet"
    parts = [duration_text(probe.duration), f"{probe.width}x{probe.height}"]
    if probe.size_bytes:
        parts.append(size_text(probe.size_bytes))
    if not probe.has_audio:
        parts.append("no audio")
    return SEP.join(parts)


def _error_of(status: VideoStatus | BlogPublishStatus | VideoDeletionStatus) -> str | None:
    return status.error or _last_step_error(status.steps)


def _last_step_error(steps: Sequence[StepState]) -> str | None:
    """The error of the last step shown that has one: a failure while the job runs on."""
    errors = [f"{step.name}: {step.last_error}" for step in steps if step.last_error]
    return errors[-1] if errors else None


def _state_text(state: StepStatus | str) -> str:
    text = str(state)
    return f"**{text}**" if text in (StepStatus.FAILED, StepStatus.RUNNING) else text


def _facts_markdown(headline: str, facts: Sequence[Fact]) -> str:
    """A bold headline and a list of facts (a list: the UI draws a table without a header row
    badly)."""
    return "\n".join([f"**{headline}**", "", *(f"- {label}: {value}" for label, value in facts)])
