"""What an operator reads of a run in the Temporal UI (spool/models/run_text.py): summaries of
runs, activities and timers, and the Markdown of the details, built from values alone."""

from __future__ import annotations

import pytest

from spool.models import (
    BlogPublishStatus,
    CaptionsInput,
    CaptionsResult,
    CaptionsState,
    JobState,
    Post,
    ProbeResult,
    RenditionResult,
    StepState,
    StepStatus,
    VideoDeletionInput,
    VideoDeletionStatus,
    VideoPipelineInput,
    VideoStatus,
    run_text,
)

pytestmark = pytest.mark.unit


def video_input(**fields) -> VideoPipelineInput:
    return VideoPipelineInput(
        video_id="v1", owner_id="ana", source_key="videos/v1/source", **fields
    )


def test_a_video_summary_names_the_file_its_size_and_the_ladder():
    inp = video_input(renditions=["720p", "480p", "360p"])
    assert run_text.video_summary(inp, "talk.mp4", 4_200_000) == (
        "talk.mp4 · 4.2 MB · 720p 480p 360p"
    )
    # No name (a job started by another client): the stored upload, and the whole ladder.
    assert run_text.video_summary(video_input(captions=False)) == (
        "upload videos/v1/source · every rung up to the source · no captions"
    )


def test_a_fetched_source_shows_only_the_urls_origin():
    inp = video_input(source_url="https://user:pw@media.example:8443/a/b.mp4?token=secret")
    summary = run_text.video_summary(inp)
    assert summary.startswith("fetched from https://media.example:8443 · ")
    details = run_text.video_details(inp)
    assert "secret" not in summary + details and "pw" not in summary + details


def test_client_text_stays_one_short_line_and_plain_markdown():
    name = "evil](http://x)\n| col | " + "a" * 200
    summary = run_text.video_summary(video_input(), name)
    assert "\n" not in summary and len(summary.split(" · ")[0]) == run_text.NAME_CHARS
    details = run_text.video_details(video_input(), name)
    file_line = next(line for line in details.splitlines() if line.startswith("- file:"))
    assert r"evil\]\(http://x\) \| col \|" in file_line


def test_video_details_list_the_starts_facts():
    details = run_text.video_details(video_input(renditions=["720p"]), "talk.mp4", 4_200_000)
    assert details.splitlines()[0] == "**Video job `video-v1`**"
    for fact in (
        "- file: talk.mp4",
        "- size: 4.2 MB (4,200,000 bytes)",
        "- renditions: 720p",
        "- captions: Whisper, language en",
        "- duration: known once the probe has run (current details)",
    ):
        assert fact in details.splitlines(), details


def test_a_post_summary_and_details_name_title_author_and_operation():
    post = Post(post_id="p1", author_id="ana", title="Hello *world*", body="x" * 1200, version=2)
    assert run_text.post_summary(post) == "publish “Hello *world*” by ana · post p1 v2"
    assert run_text.post_summary(post, "unpublish").startswith("unpublish “Hello")
    details = run_text.post_details(post).splitlines()
    assert "- title: Hello \\*world\\*" in details
    assert "- body: 1,200 characters" in details
    assert "- followers: the author's followers (read page by page)" in details


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (
            (3, 8, 24.0, 32.0, ["720p", "480p", "360p"]),
            "encode chunk 3/8 · 24.0–32.0 s · 720p 480p 360p",
        ),
        ((0, 1, 0.0, 2.5, ["360p"]), "encode chunk 0/1 · 0.0–2.5 s · 360p"),
    ],
)
def test_a_chunk_summary_says_which_chunk_its_time_and_renditions(args, text):
    assert run_text.chunk_summary(*args) == text


def test_activity_summaries_for_packages_and_transcription():
    assert run_text.package_summary("720p", 8, True) == "package 720p · 8 chunks + audio"
    assert run_text.package_summary("360p", 1, False) == "package 360p · 1 chunk"
    assert run_text.transcribe_summary(240.0, "en") == "transcribe 4 min of audio · en"


@pytest.mark.parametrize(
    ("value", "text"),
    [(999, "999 bytes"), (1000, "1.0 kB"), (4_200_000, "4.2 MB"), (3_100_000_000, "3.1 GB")],
)
def test_sizes_read_as_a_file_manager_shows_them(value, text):
    assert run_text.size_text(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.5, "2.5 s"), (59.9, "59.9 s"), (240, "4 min"), (3900, "1 h 05 min")],
)
def test_durations_are_as_precise_as_a_glance_needs(seconds, text):
    assert run_text.duration_text(seconds) == text


def test_times_are_utc_even_past_the_last_date():
    assert run_text.utc_text(1796634000) == "2026-12-07 09:00 UTC"
    assert run_text.utc_text(1e12) == "1000000000000 s after the epoch"
    assert run_text.deletion_summary("v1", None) == "delete video v1 now"
    assert run_text.deletion_summary("v1", 1796634000) == (
        "delete video v1 at 2026-12-07 09:00 UTC (retention)"
    )


def steps() -> list[StepState]:
    return [
        StepState(name="probe", state=StepStatus.DONE, percent=100.0),
        StepState(name="encode", state=StepStatus.RUNNING, percent=37.5),
        StepState(name="rendition-720p", state=StepStatus.FAILED, last_error="chunk 3: x|y"),
        StepState(name="audio", state=StepStatus.SKIPPED, detail="no audio track"),
        StepState(name="package"),
    ]


def test_the_steps_table_has_a_row_per_step_as_the_status_shows_it():
    rows = run_text.steps_table(steps()).splitlines()
    assert rows[:2] == ["| step | state | progress | last error or note |", "|---|---|---|---|"]
    assert rows[2:] == [
        "| probe | done | 100 % |  |",
        "| encode | **running** | 37.5 % |  |",
        "| rendition-720p | **failed** |  | chunk 3: x\\|y |",
        "| audio | skipped |  | no audio track |",
        "| package | pending |  |  |",
    ]


def test_video_job_details_carry_the_status_facts_and_the_last_error():
    status = VideoStatus(
        job_id="video-v1",
        video_id="v1",
        state=JobState.PROCESSING,
        steps=steps(),
        probe=ProbeResult(
            duration=12.0,
            width=1280,
            height=720,
            has_video=True,
            has_audio=False,
            size_bytes=4_200_000,
        ),
        renditions=[RenditionResult("480p", "k", 854, 480, 1, 1, 12.0)],
        step_shares={"encode": {"encode-00003": 25.0, "encode-00001": 25.0}},
    )
    details = run_text.video_job_details(status)
    lines = details.splitlines()
    assert lines[0] == "**Video job `video-v1`**"
    assert "- source: 12.0 s · 1280x720 · 4.2 MB · no audio" in lines
    assert "- chunks encoding: encode-00001 encode-00003" in lines
    assert "- renditions made: 480p" in lines
    assert "| encode | **running** | 37.5 % |  |" in lines
    # While the job runs on, its last error is the last step's that failed.
    assert lines[-1] == "**Last error:** rendition-720p: chunk 3: x\\|y"
    status.error, status.probe = "no rendition could be made", None
    details = run_text.video_job_details(status)
    assert "- source: not probed yet" in details.splitlines()
    assert details.endswith("**Last error:** no rendition could be made")


def test_post_captions_and_deletion_details():
    post = BlogPublishStatus("post-p1-v2", "p1", 2, JobState.READY, steps()[:1])
    assert run_text.post_job_details(post).splitlines()[:3] == [
        "**Post job `post-p1-v2`**",
        "",
        "- state: ready",
    ]
    written = Post(post_id="p1", author_id="ana", title="[Hi]", body="b", version=2)
    lines = run_text.post_job_details(post, written).splitlines()
    assert "- title: \\[Hi\\]" in lines and "- author: ana" in lines
    captions = CaptionsResult(state=CaptionsState.AVAILABLE, segment_count=4, steps=steps()[:1])
    assert "- segments: 4" in run_text.captions_job_details("v1", "en", captions).splitlines()
    deletion = VideoDeletionStatus(
        "delete-video-v1", "v1", JobState.PROCESSING, steps()[:1], "retention", 1796634000.0
    )
    lines = run_text.deletion_job_details(deletion).splitlines()
    assert "- waits: until 2026-12-07 09:00 UTC, or a delete request" in lines
    assert "**Last error:**" not in "\n".join(lines)


def test_the_captions_child_and_a_deletion_say_what_they_were_started_for():
    captions = run_text.captions_details(
        CaptionsInput("v1", "videos/v1/source", "fr", max_attempts=2)
    )
    assert "- language: fr" in captions.splitlines()
    assert "- attempts per step: 2" in captions.splitlines()
    waiting = run_text.deletion_details(VideoDeletionInput("v1", 1796634000.0, "retention"))
    assert "- waits until: 2026-12-07 09:00 UTC (a delete request ends the wait)" in (
        waiting.splitlines()
    )
    now = run_text.deletion_details(VideoDeletionInput("v1"))
    assert "- waits until: nothing: deletes at once" in now.splitlines()
