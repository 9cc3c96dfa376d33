"""The video rows a deletion touches (spool/db/video.py, spool/db/deletions.py): keyset pages
of the list, and a deleted video's rows never written back by a late write of its job."""

from __future__ import annotations

import pytest

from spool.config import Settings
from spool.db import get_engine
from spool.db.deletions import deletion_of, mark_deleted, mark_deleting
from spool.db.video import (
    cursor_of,
    delete_video_rows,
    ensure_video,
    get_caption_segments,
    get_video,
    list_videos,
    parse_cursor,
    replace_caption_segments,
)

pytestmark = pytest.mark.unit

SEGMENT = [{"start": 0.0, "end": 1.0, "text": "hi"}]


@pytest.fixture
def engine(tmp_path):
    return get_engine(Settings(_env_file=None, data_dir=tmp_path / "data"))


def all_pages(engine, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        rows = list_videos(engine, limit + 1, cursor)
        pages.append([row["video_id"] for row in rows[:limit]])
        if len(rows) <= limit:
            return pages
        cursor = cursor_of(rows[limit - 1])


def test_the_list_pages_through_every_video_once_newest_first_ties_by_id(engine):
    # Made within the same second: SQLite's CURRENT_TIMESTAMP ties them, the id orders them.
    ids = [f"v{n}" for n in range(7)]
    for video_id in ids:
        ensure_video(engine, video_id, "o", "ready")
    pages = all_pages(engine, 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [video_id for page in pages for video_id in page] == sorted(ids, reverse=True)


def test_a_deleted_video_is_never_listed_nor_written_back(engine):
    for video_id in ("a", "b", "c"):
        ensure_video(engine, video_id, "o", "ready")
    replace_caption_segments(engine, "b", SEGMENT)
    assert mark_deleting(engine, "b", "delete-video-b", "request") is True
    assert mark_deleting(engine, "b", "delete-video-b", "request") is False  # a repeat
    assert [row["video_id"] for row in list_videos(engine)] == ["c", "a"]
    assert delete_video_rows(engine, "b") == 2
    assert delete_video_rows(engine, "b") == 0  # a retry: nothing left, no error
    # A late write of the job, after the rows went: nothing comes back.
    ensure_video(engine, "b", "o", "processing")
    replace_caption_segments(engine, "b", SEGMENT)
    assert get_video(engine, "b") is None and get_caption_segments(engine, "b") == []
    mark_deleted(engine, "b")
    assert deletion_of(engine, "b")["state"] == "deleted"
    assert get_video(engine, "a") is not None and get_video(engine, "c") is not None


def test_a_cursor_names_its_place_and_only_cursors_parse():
    cursor = cursor_of({"created_at": "2026-12-07T03:30:00", "video_id": "abc"})
    when, video_id = parse_cursor(cursor)
    assert (when.isoformat(), video_id) == ("2026-12-07T03:30:00+00:00", "abc")
    assert parse_cursor("999999999999999999~x")[0].year == 9999  # clamped, not an error
    for bad in ("", "nonsense", "12~a/b", "~abc"):
        with pytest.raises(ValueError):
            parse_cursor(bad)
