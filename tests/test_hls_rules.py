"""The bit rates a master playlist states (spool/media/hls.py), against RFC 8216's definitions
(section 4.3.4.2), on segments of chosen sizes: no ffmpeg needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from spool.media.hls import bandwidths, master_playlist, read_media_playlist
from spool.models.video import HlsAudioInfo, HlsVariantInfo
from tests.support import hls_rules

pytestmark = pytest.mark.unit


def write_playlist(folder: Path, segments: list[tuple[float, int]], target: int) -> Path:
    """A VOD media playlist of segments (seconds, bytes), the segments written beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
    lines += ["#EXT-X-PLAYLIST-TYPE:VOD", '#EXT-X-MAP:URI="init.mp4"']
    for n, (seconds, size) in enumerate(segments, 1):
        (folder / f"seg-{n:05d}.m4s").write_bytes(b"\0" * size)
        lines += [f"#EXTINF:{seconds:.6f},", f"seg-{n:05d}.m4s"]
    lines.append("#EXT-X-ENDLIST")
    (folder / "index.m3u8").write_text("\n".join(lines) + "\n")
    return folder / "index.m3u8"


# Steady 2 s segments of 100 kB, then a 0.2 s last segment with a whole keyframe (40 kB):
# alone it runs at 1.6 Mbit/s, four times the steady 400 kbit/s.
STEADY_THEN_SHORT = [(2.0, 100_000)] * 5 + [(0.2, 40_000)]


def test_a_short_heavy_last_segment_is_measured_with_the_one_before(tmp_path):
    peak, average = bandwidths(read_media_playlist(write_playlist(tmp_path, STEADY_THEN_SHORT, 2)))
    assert average == pytest.approx(540_000 * 8 / 10.2, abs=1)
    # the last two together: 140 kB in 2.2 s, the densest set 1 to 3 s long
    assert peak == pytest.approx(140_000 * 8 / 2.2, abs=1)
    assert peak >= average


def test_one_segment_shorter_than_half_its_target_still_states_a_peak(tmp_path):
    peak, average = bandwidths(read_media_playlist(write_playlist(tmp_path, [(0.5, 1000)], 2)))
    assert peak == average == 16_000


def test_a_master_playlist_keeps_rfc_8216_with_its_audio(tmp_path):
    video = read_media_playlist(write_playlist(tmp_path / "360p", STEADY_THEN_SHORT, 2))
    audio = read_media_playlist(
        write_playlist(tmp_path / "audio", [(2.0, 32_000)] * 5 + [(0.2, 9_000)], 2)
    )
    (peak, average), (audio_peak, audio_average) = bandwidths(video), bandwidths(audio)
    variant = HlsVariantInfo(
        "360p", 640, 360, peak, average, "avc1.64001e", 30.0, "360p/index.m3u8"
    )
    heard = HlsAudioInfo(audio_peak, "mp4a.40.2", "audio/index.m3u8", audio_average)
    (tmp_path / "master.m3u8").write_text(master_playlist([variant], heard))
    assert hls_rules.violations("master.m3u8", lambda uri: (tmp_path / uri).read_bytes()) == []


def test_a_variant_measured_before_the_rfc_peak_still_states_bandwidth_over_average(tmp_path):
    """A running job's history may hold a variant whose peak left its last segment out: the
    master stated from it is still never below its average."""
    variant = HlsVariantInfo("360p", 640, 360, 400_000, 423_530, "avc1.64001e", 30.0, "v.m3u8")
    heard = HlsAudioInfo(128_000, "mp4a.40.2", "audio/index.m3u8")  # no average recorded
    line = next(x for x in master_playlist([variant], heard).splitlines() if "BANDWIDTH" in x)
    assert "BANDWIDTH=551530," in line and "AVERAGE-BANDWIDTH=551530" in line


def test_the_rules_catch_a_bandwidth_below_the_average(tmp_path):
    write_playlist(tmp_path / "360p", STEADY_THEN_SHORT, 2)
    (tmp_path / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=400000,AVERAGE-BANDWIDTH=423530,RESOLUTION=640x360,"
        'CODECS="avc1.64001e"\n360p/index.m3u8\n'
    )
    found = hls_rules.violations("master.m3u8", lambda uri: (tmp_path / uri).read_bytes())
    assert any("below the peak" in x for x in found)
    assert any("BANDWIDTH 400000 < AVERAGE-BANDWIDTH 423530" in x for x in found)
