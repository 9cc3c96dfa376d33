"""Which renditions a source gets: rungs by the picture's short side, never above it
(spool/models/video.py)."""

from __future__ import annotations

import pytest

from spool.models.video import plan_rungs

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("width", "height", "rungs"),
    [
        (1920, 1080, [1080, 720, 480, 360]),
        (1080, 1920, [1080, 720, 480, 360]),  # a phone's portrait video: the same ladder
        (1280, 720, [720, 480, 360]),
        (720, 1280, [720, 480, 360]),  # its own full size first, never 608x1080
        (608, 1080, [480, 360]),
        (1080, 1080, [1080, 720, 480, 360]),
        (2160, 3840, [1080, 720, 480, 360]),
        (300, 533, [300]),  # below the smallest rung: one rendition at its own short side
        (321, 241, [240]),  # rounded down to even
    ],
)
def test_rungs_follow_the_short_side(width, height, rungs):
    assert plan_rungs(width, height) == rungs


def test_a_request_picks_among_the_rungs_the_source_allows():
    assert plan_rungs(720, 1280, ["1080p", "480p"]) == [480]
    assert plan_rungs(1280, 720, ["360p", "720p"]) == [720, 360]
