"""Which renditions a source gets: rungs by the picture's short side, never above it
(spool/models/video.py), and what each may spend: never more than the source spends at its
size (spool/media/rates.py)."""

from __future__ import annotations

import pytest

from activities.video.common import rendition_rate
from spool.config import Settings
from spool.media import rates
from spool.media.probe import parse_probe
from spool.models.video import ProbeResult, plan_rungs

pytestmark = pytest.mark.unit

LADDER = {1080: 5000, 720: 2800, 480: 1400, 360: 800}


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


# --- what each rung may spend (spool/media/rates.py) -------------------------------------------


def _source(width: int, height: int, video_kbps: float | None, **kw) -> ProbeResult:
    bit_rate = int(video_kbps * 1000) if video_kbps else None
    return ProbeResult(5.0, width, height, True, True, video_bit_rate=bit_rate, **kw)


def test_a_rung_never_spends_more_than_the_source_at_its_size():
    """The issue's upload: 1280x720 at 1.6 Mbit/s. Its 720p may spend what it spends (not the
    ladder's 2800), each lower rung that scaled by its share of the pixels."""
    source = _source(1280, 720, 1600)
    assert rates.rung_ceiling_kbps(2800, 720, source) == 1600
    assert rates.rung_ceiling_kbps(1400, 480, source) == int(1600 * (480 / 720) ** 2)  # 711
    assert rates.rung_ceiling_kbps(800, 360, source) == 400
    # A portrait source: the same arithmetic on its short side.
    assert rates.rung_ceiling_kbps(800, 360, _source(720, 1280, 1600)) == 400


def test_the_ladder_stays_the_ceiling_of_a_source_that_spends_more():
    source = _source(1920, 1080, 20_000)
    assert [rates.rung_ceiling_kbps(k, h, source) for h, k in LADDER.items()] == list(
        LADDER.values()
    )


def test_a_source_of_unknown_rate_gets_the_ladder_and_an_old_probe_its_container_rate():
    assert rates.rung_ceiling_kbps(2800, 720, _source(1280, 720, None)) == 2800
    old_probe = ProbeResult(5.0, 1280, 720, True, True, bit_rate=1_000_000)
    assert rates.rung_ceiling_kbps(2800, 720, old_probe) == 1000
    # Never zero, whatever the source says: x264 always gets a rate to keep.
    assert rates.rung_ceiling_kbps(800, 360, _source(1920, 1080, 0.5)) == 1


def test_the_vbv_rate_keeps_a_chunk_under_its_ceiling_on_average():
    """The buffer starts 0.9 full, and a chunk may spend that start on top of the VBV rate:
    rate x seconds + start never exceeds ceiling x seconds."""
    for seconds in (0.5, 2.0, 8.0, 30.0, 600.0):
        peak = rates.peak_kbps(1000, seconds)
        start = rates.BUFFER_START * peak * rates.BUFFER_SECONDS
        assert peak * seconds + start <= 1000 * seconds
        assert peak >= 1000 * seconds / (seconds + 2) - 1  # not lowered more than needed
    assert rates.peak_kbps(1000, None) == 1000


def test_rate_options_are_capped_constant_quality_or_the_fixed_ladder():
    capped = rates.x264_rate_options(1000, 22, 8.0)
    peak = rates.peak_kbps(1000, 8.0)
    assert capped == {
        "crf": "22",
        "maxrate": f"{peak}k",
        "bufsize": f"{peak * 2}k",
        "rc_init_occupancy": int(peak * 2 * 1000 * 0.9),
    }
    assert rates.x264_rate_options(1000, None, 8.0) == {
        "b:v": "1000k",
        "maxrate": "1500k",
        "bufsize": "2000k",
    }


def test_the_plan_takes_crf_and_ceiling_from_the_settings():
    source = _source(1280, 720, 1600)
    settings = Settings(
        _env_file=None, bitrate_ladder=LADDER, x264_crf=21, x264_crf_source_bound=21
    )
    assert rendition_rate(settings, 720, source) == (1600, 21)
    assert rendition_rate(settings, 360, source) == (400, 21)
    fixed = settings.model_copy(update={"rate_control": "ladder"})
    assert rendition_rate(fixed, 720, source) == (2800, None)


def test_a_rung_the_source_bounds_gets_the_lower_crf_one_the_ladder_bounds_the_crf():
    """The issue's upload (720p, 1.6 Mbit/s) bounds every rung; a camera's 1080p at 20
    Mbit/s bounds none; one at 3 Mbit/s bounds its 1080p (3000 < 5000), and its 720p (1333
    < 2800) and 480p (593 < 1400) and 360p (333 < 800)."""
    settings = Settings(_env_file=None, bitrate_ladder=LADDER, x264_crf=22)
    below = settings.x264_crf_source_bound
    assert below < 22
    web = _source(1280, 720, 1600)
    assert [rendition_rate(settings, h, web) for h in (720, 480, 360)] == [
        (1600, below),
        (711, below),
        (400, below),
    ]
    camera = _source(1920, 1080, 20_000)
    assert [rendition_rate(settings, h, camera)[1] for h in LADDER] == [22] * 4
    low = _source(1920, 1080, 3000)
    assert all(rates.source_bounds_rung(k, h, low) for h, k in LADDER.items())
    # A source spending exactly the ladder's rate is the ladder's: its CRF is the ladder's.
    assert not rates.source_bounds_rung(5000, 1080, _source(1920, 1080, 5000))


def test_the_source_bound_crf_never_makes_a_worse_picture_and_unknown_rates_keep_the_crf():
    web = _source(1280, 720, 1600)
    assert rates.rung_crf(2800, 720, web, 22, 12) == 12
    assert rates.rung_crf(2800, 720, web, 10, 12) == 10  # never a worse picture for it
    assert rates.rung_crf(2800, 720, web, 22, 51) == 22  # one CRF on every rung
    assert rates.rung_crf(2800, 720, _source(1280, 720, None), 22, 12) == 22
    assert rates.rung_crf(1000, 720, web, 22, 12) == 22  # the ladder is below the source


@pytest.mark.parametrize(
    ("streams", "fmt", "size", "expected"),
    [
        # MP4: the video stream's own rate.
        ([("video", "1500000"), ("audio", "128000")], "1630000", 0, 1_500_000),
        # A header claiming more than the whole file holds is held to the file's rate.
        ([("video", "90000000"), ("audio", "128000")], "1630000", 0, 1_630_000),
        # Matroska: no stream rates; the file's less the audio's, or the file's.
        ([("video", None), ("audio", "128000")], "1628000", 0, 1_500_000),
        ([("video", None), ("audio", None)], None, 1_000_000, 1_600_000),
        ([("video", None)], None, 0, None),
    ],
)
def test_the_probe_measures_the_source_video_rate(streams, fmt, size, expected):
    data = {
        "streams": [
            {"codec_type": kind, "width": 1280, "height": 720, "duration": "5.0", "bit_rate": rate}
            for kind, rate in streams
        ],
        "format": {"duration": "5.0", "bit_rate": fmt},
    }
    assert parse_probe(data, size_bytes=size).video_bit_rate == expected
