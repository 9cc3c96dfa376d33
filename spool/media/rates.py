"""How many bits a rendition may spend (docs/pipelines.md, "Content-aware rates").

A rung is encoded at a constant quality (x264's CRF), so a slide show spends what a slide
show needs and a football match what it needs, under a ceiling: the ladder's rate for the
rung, and never more than the source itself spends at that size (its video bit rate scaled
by the rung's share of the source's pixels). The ceiling bounds the rendition's average:
x264's VBV ``maxrate``, with a buffer of two seconds at that rate, is set just below it
(``peak_kbps``), so no stretch of the rendition needs a faster link than the ceiling either.
Where the source's own rate is the ceiling, the CRF is lower (``rung_crf``): such a source
was already encoded at less than the ladder spends, and its rung is made as close to it as
that rate allows.

Pure arithmetic, no I/O: the plan activity and the benches work out the same rates.
"""

from __future__ import annotations

from spool.models.video import ProbeResult

# The VBV buffer, in seconds at the rung's ceiling: what the fixed ladder has always used.
BUFFER_SECONDS = 2
# How full the VBV buffer starts (x264's own default, stated so peak_kbps can count on it).
BUFFER_START = 0.9
# The fixed ladder's peaks: its average rate times this (its maxrate).
FIXED_PEAK_FACTOR = 1.5


def rung_share(rung: int, source_short_side: int) -> float:
    """The rung's pixels as a share of the source's: the picture keeps its aspect, so the
    square of the short sides' ratio (at most 1, a rung is never above its source)."""
    if source_short_side <= 0:
        return 1.0
    return min(1.0, (rung / source_short_side) ** 2)


def source_rate_at_rung(
    source_video_bps: int | None, rung: int, source_short_side: int
) -> int | None:
    """The kbit/s the source spends on a picture of the rung's size (its video rate scaled by
    pixels, at least 1), or None when the source's rate is unknown."""
    if not source_video_bps or source_video_bps <= 0:
        return None
    return max(1, int(source_video_bps * rung_share(rung, source_short_side) / 1000))


def rung_ceiling_kbps(ladder_kbps: int, rung: int, probe: ProbeResult) -> int:
    """A rendition's ceiling: the ladder's rate for the rung, lowered to what the source
    spends at the rung's size. At least 1 kbit/s, so x264 always gets a rate to keep."""
    short_side = min(probe.width, probe.height)
    at_rung = source_rate_at_rung(source_video_bps(probe), rung, short_side)
    return max(1, min(ladder_kbps, at_rung) if at_rung is not None else ladder_kbps)


def source_bounds_rung(ladder_kbps: int, rung: int, probe: ProbeResult) -> bool:
    """Whether the source's own rate at the rung's size, not the ladder's, is the rung's
    ceiling: the source spends less than the ladder would."""
    short_side = min(probe.width, probe.height)
    at_rung = source_rate_at_rung(source_video_bps(probe), rung, short_side)
    return at_rung is not None and at_rung < ladder_kbps


def rung_crf(
    ladder_kbps: int, rung: int, probe: ProbeResult, crf: float, source_bound_crf: float
) -> float:
    """A rung's constant quality: ``crf`` where the ladder's rate is its ceiling, and where
    the source's own rate is, ``source_bound_crf`` if lower. Such a source was already
    encoded at less than the ladder would spend, and every encode loses again: spending up
    to the source's own rate loses least, which a lower CRF does under that ceiling (the
    ceiling still holds the average: bench/quality.py --ladder)."""
    if source_bounds_rung(ladder_kbps, rung, probe):
        return min(crf, source_bound_crf)
    return crf


def source_video_bps(probe: ProbeResult) -> int | None:
    """The source's video bit rate, bits/s: what the probe measured for the video stream, or
    for a probe from before it did, the container's (audio included: a ceiling, not less)."""
    return probe.video_bit_rate or probe.bit_rate


def x264_rate_options(kbps: int, crf: float | None, seconds: float | None = None) -> dict:
    """ffmpeg's rate options for one rendition: constant quality ``crf`` whose average over
    an encode of ``seconds`` stays under ``kbps``, or with ``crf`` None the fixed ladder (an
    average of ``kbps``, peaks 1.5x)."""
    if crf is None:
        return {
            "b:v": f"{kbps}k",
            "maxrate": f"{int(kbps * FIXED_PEAK_FACTOR)}k",
            "bufsize": f"{kbps * BUFFER_SECONDS}k",
        }
    peak = peak_kbps(kbps, seconds)
    bufsize = peak * BUFFER_SECONDS
    return {
        "crf": f"{crf:g}",
        "maxrate": f"{peak}k",
        "bufsize": f"{bufsize}k",
        "rc_init_occupancy": int(bufsize * 1000 * BUFFER_START),
    }


def peak_kbps(ceiling_kbps: int, seconds: float | None) -> int:
    """The VBV rate that keeps an encode of ``seconds`` under ``ceiling_kbps`` on average.
    The buffer starts ``BUFFER_START`` full, and an encode may spend that start on top of the
    VBV rate: over a short chunk (each chunk starts its own buffer) that is a fifth more, so
    the rate is lowered until rate x seconds + the start fits the ceiling."""
    if not seconds or seconds <= 0:
        return ceiling_kbps
    share = seconds / (seconds + BUFFER_START * BUFFER_SECONDS)
    return max(1, int(ceiling_kbps * share))
