"""Content-aware rates on real ffmpeg: a rendition made the way a job makes it (planned,
encoded chunk by chunk, packaged) never spends more than its source spends at its size
(spool/media/rates.py); the arithmetic itself is unit-tested in tests/test_ladder.py."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from activities.video import VideoActivitySet
from spool.config import Settings
from spool.media import rates
from spool.media.probe import probe
from spool.storage import open_storage
from tests.support.renditions import make_rendition

pytestmark = pytest.mark.e2e

SOURCE_KEY = "videos/rates/source"


@pytest.fixture(scope="module")
def low_rate_clip(clips) -> Path:
    """854x480 test pattern, 6 s, silent, encoded at about 250 kbit/s (x264 medium): far less
    than the ladder's 1400 for 480p, and less than Spool's faster preset needs for it."""
    path = clips / "low-rate-480p.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
        + ["-i", "testsrc2=size=854x480:rate=15", "-t", "6", "-c:v", "libx264"]
        + ["-preset", "medium", "-b:v", "250k", "-maxrate", "300k", "-bufsize", "500k"]
        + ["-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


async def _video_kbps(settings: Settings, clip: Path, height: int, tmp_path: Path) -> float:
    """The video rate of the rung ``height`` a job with ``settings`` makes of ``clip``."""
    open_storage(settings).put_file(clip, SOURCE_KEY)
    acts = VideoActivitySet.from_settings(settings)
    made = await make_rendition(acts, "rates", SOURCE_KEY, await probe(clip), height)
    out = tmp_path / f"{height}p-{settings.rate_control}.mp4"
    await asyncio.to_thread(acts.files.storage.get_to, made.key, out)
    return ((await probe(out)).video_bit_rate or 0) / 1000


def _settings(tmp_path: Path, **kw) -> Settings:
    # Chunks of one 2 s segment: each chunk starts its own VBV buffer, the hardest case for
    # keeping the average under the ceiling.
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        chunk_seconds=2.0,
        hls_segment_seconds=2.0,
        **kw,
    )


async def test_a_rendition_of_a_low_rate_source_spends_no_more_than_the_source(
    low_rate_clip, tmp_path
):
    source = await probe(low_rate_clip)
    assert source.video_bit_rate and source.video_bit_rate < 400_000, source
    source_kbps = source.video_bit_rate / 1000
    settings = _settings(tmp_path)
    for height in (480, 360):
        at_size = rates.source_rate_at_rung(source.video_bit_rate, height, 480)
        assert at_size is not None
        made = await _video_kbps(settings, low_rate_clip, height, tmp_path)
        assert 0 < made <= at_size, (height, made, at_size)
    # The fixed ladder, as before: the same source's 480p spent far more than the source.
    fixed = _settings(tmp_path, rate_control="ladder")
    assert await _video_kbps(fixed, low_rate_clip, 480, tmp_path) > 2 * source_kbps


async def test_under_constant_quality_the_ladder_is_each_rungs_ceiling(clips, tmp_path):
    """SPOOL_BITRATE_LADDER still bounds every rendition: a rung's ceiling below what the
    picture needs holds it there; a ceiling far above is not spent for nothing."""
    from tests.support import media_clips

    clip = media_clips.make_clip(
        clips / "ceiling.mp4", width=320, height=240, seconds=4, speech=None, pattern="testsrc2"
    )
    measured = {}
    for kbps in (120, 5000):
        settings = _settings(tmp_path / str(kbps), bitrate_ladder={240: kbps})
        measured[kbps] = await _video_kbps(settings, clip, 240, tmp_path)
    assert 0 < measured[120] <= 120, measured
    assert measured[120] < measured[5000] < 5000 / 2, measured
