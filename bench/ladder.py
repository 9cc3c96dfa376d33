"""Content-aware rates against the fixed ladder (``bench/quality.py --ladder``).

Every source of a varied set (``bench/content.py``) gets its whole ladder, made chunk by
chunk as the pipeline makes it, three ways:

- fixed: today's fixed ladder (the ladder's rate as the average, peaks 1.5x);
- capped: the same fixed ladder with each rate lowered to the source's own at the rung, as
  the third goal asks: what keeping "never above the source" costs without content-aware
  rates;
- Spool: constant quality under each rung's ceiling (``rendition_rate``, the plan's), once
  per CRF asked for.

Each rung's video kbit/s, PSNR and SSIM against the source (scaled to the rung) and PSNR
against the pictures the source was generated from ("orig"). Goals: 30 % fewer bytes over
the set than the fixed ladder, no rung more than 0.5 dB PSNR under the fixed ladder's, none
above the source's own rate at its size. Where the fixed ladder itself spends above the
source's rate, the second goal and the third cannot both hold: those rungs are listed apart.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from activities.video.common import rendition_rate, video_kbps
from bench.content import the_set
from bench.quality import chunked, scores
from spool.config import Settings
from spool.media import rates
from spool.media.chunks import RenditionSpec
from spool.media.probe import probe
from spool.models.video import ProbeResult, plan_rungs

# (settings, rung, the source's probe) -> (kbit/s, crf or None): how a way rates a rung.
RateRule = Callable[[Settings, int, ProbeResult], tuple[int, float | None]]


@dataclass
class Rung:
    """One rendition as made and scored: its ceiling, what it spends, its PSNR and SSIM
    against the source (scaled to its size) and its PSNR against the original pictures the
    source was encoded from (None for a clip whose original is not at hand)."""

    ceiling_kbps: int
    kbps: float
    psnr: float
    ssim: float
    original_psnr: float | None


def fixed_rate(settings: Settings, height: int, info: ProbeResult) -> tuple[int, float | None]:
    """Today's fixed ladder: the ladder's rate as the average, whatever the source."""
    return video_kbps(settings.bitrate_ladder, height), None


def capped_rate(settings: Settings, height: int, info: ProbeResult) -> tuple[int, float | None]:
    """The fixed ladder held to the source's own rate at the rung (the third goal alone)."""
    return rates.rung_ceiling_kbps(video_kbps(settings.bitrate_ladder, height), height, info), None


async def measured_ladder(
    source: Path, original: list[str] | None, settings: Settings, rule: RateRule, work: Path
) -> dict[int, Rung]:
    """The source's whole ladder made as the pipeline makes it, each rung rated by ``rule``,
    scored."""
    info = await probe(source)
    specs = []
    for height in plan_rungs(info.width, info.height):
        kbps, crf = rule(settings, height, info)
        specs.append(RenditionSpec(work / f"{height}p.mp4", height, kbps, crf))
    files, _ = await chunked(source, work, specs, settings)
    rungs = {}
    for spec in specs:
        made = files[spec.name]
        psnr, ssim = await asyncio.to_thread(scores, made, source)
        from_original = await asyncio.to_thread(scores, made, original) if original else None
        rungs[spec.height] = Rung(
            spec.video_kbps,
            ((await probe(made)).video_bit_rate or 0) / 1000,
            psnr,
            ssim,
            from_original[0] if from_original else None,
        )
    return rungs


async def ladder_table(settings: Settings, crfs: list[float]) -> None:
    """Every source of the set through the fixed ladder, the capped one and the content-aware
    one at each of ``crfs``: one table per CRF."""
    ways: dict[str, tuple[Settings, RateRule]] = {
        "fixed": (settings, fixed_rate),
        "capped": (settings, capped_rate),
    }
    for crf in crfs:
        ways[f"{crf:g}"] = (
            settings.model_copy(update={"rate_control": "crf", "x264_crf": crf}),
            rendition_rate,
        )
    runs: dict[str, dict[str, dict[int, Rung]]] = {}
    sources = the_set()
    for name, _shows, source, original in sources:
        runs[name] = {}
        for way, (way_settings, rule) in ways.items():
            with tempfile.TemporaryDirectory(prefix="spool-ladder-") as tmp:
                runs[name][way] = await measured_ladder(
                    source, original, way_settings, rule, Path(tmp)
                )
    infos = {name: await probe(source) for name, _shows, source, _original in sources}
    below = settings.x264_crf_source_bound
    spool = "" if below is None else f" (CRF {below:g} where the source's rate is the ceiling)"
    print(
        f"x264 {settings.x264_preset}; fixed ladder {settings.bitrate_ladder} kbit/s (maxrate "
        "1.5x, bufsize 2 s); capped: the same, each rate lowered to the source's at the rung; "
        f"Spool: CRF under each rung's ceiling{spool}; PSNR/SSIM against the source scaled to "
        "the rung, orig = PSNR against the pictures the source was made from"
    )
    for crf in crfs:
        print_ladder(infos, runs, f"{crf:g}")


def source_kbps_at(info: ProbeResult, height: int) -> float:
    """The source's own rate at the rung's size (by pixels), 0 when unknown."""
    short = min(info.width, info.height)
    return rates.source_rate_at_rung(rates.source_video_bps(info), height, short) or 0


def print_ladder(infos: dict[str, ProbeResult], runs: dict, crf: str) -> None:
    print(
        f"\nCRF {crf}\n{'source':17} {'rung':>5} {'src@rung':>8} | {'fixed':>6} {'PSNR':>6} "
        f"{'orig':>6} | {'capped':>6} {'PSNR':>6} {'orig':>6} | {'Spool':>6} {'PSNR':>6} "
        f"{'SSIM':>6} {'orig':>6} | {'bytes':>5} {'dPSNR':>6} {'d orig':>6} {'d cap':>6}"
    )
    totals = {"fixed": 0.0, "capped": 0.0, "spool": 0.0}
    worst: dict[str, list[float]] = {}
    over, conflict = [], []
    for name, info in infos.items():
        for height, f in runs[name]["fixed"].items():
            c, s = runs[name]["capped"][height], runs[name][crf][height]
            at_rung = source_kbps_at(info, height)
            for way, rung in (("fixed", f), ("capped", c), ("spool", s)):
                totals[way] += rung.kbps * info.duration
            d_orig = _delta(s.original_psnr, f.original_psnr)
            marks = worst.setdefault(name, [math.inf] * 4)
            marks[0] = min(marks[0], s.psnr - f.psnr)
            marks[1] = min(marks[1], d_orig if d_orig is not None else math.inf)
            marks[3] = min(marks[3], s.psnr - c.psnr)
            if s.kbps > at_rung:
                over.append(f"{name} {height}p")
            if f.kbps > at_rung:
                conflict.append(f"{name} {height}p")
            else:
                marks[2] = min(marks[2], s.psnr - f.psnr)
            print(
                f"{name:17} {height:>4}p {at_rung:8.0f} | {f.kbps:6.0f} {f.psnr:6.2f} "
                f"{_db(f.original_psnr)} | {c.kbps:6.0f} {c.psnr:6.2f} {_db(c.original_psnr)} | "
                f"{s.kbps:6.0f} {s.psnr:6.2f} {s.ssim:6.4f} {_db(s.original_psnr)} | "
                f"{s.kbps / f.kbps - 1:+5.0%} {s.psnr - f.psnr:+6.2f} {_signed(d_orig)} "
                f"{s.psnr - c.psnr:+6.2f}"
            )
    print_summary(totals, worst, over, conflict)


def print_summary(totals: dict, worst: dict, over: list[str], conflict: list[str]) -> None:
    print(
        f"over the set: {1 - totals['spool'] / totals['fixed']:.1%} fewer bytes than the fixed "
        f"ladder (goal >= 30 %), {1 - totals['spool'] / totals['capped']:.1%} fewer than the "
        f"capped one; rungs above the source's own rate at their size: {', '.join(over) or 'none'}"
    )
    print(
        "worst rung per source, dB PSNR (goal >= -0.5) against the fixed ladder: on the source, "
        "on the original pictures, on the source where the fixed ladder keeps under the "
        "source's rate; against the capped ladder, on the source"
    )
    for name, (on_source, on_original, within, on_capped) in worst.items():
        print(
            f"  {name:17} {_signed(on_source)} {_signed(on_original)} {_signed(within)} "
            f"{_signed(on_capped)}"
        )
    print(
        "rungs where the fixed ladder itself spends above the source's own rate (the PSNR "
        f"goal and 'never above the source' conflict): {', '.join(conflict) or 'none'}"
    )


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _db(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.2f}"


def _signed(value: float | None) -> str:
    return "     -" if value is None or math.isinf(value) else f"{value:+6.2f}"
