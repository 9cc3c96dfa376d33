"""Picture quality of chunked encoding against a single-pass encode at the same settings.

    .venv/bin/python bench/quality.py [--seconds 60] [--height 1080]

A generated 1920x1080 30 fps clip with detail everywhere (testsrc2 under temporal noise, so
the encoder has real work in every frame) is encoded to one rendition twice, with the same
x264 preset and bitrate ladder from the settings:

- chunked: ``chunks.encode_chunk`` per chunk of ``plan_chunks`` (the settings' chunk and
  segment lengths) moved onto the source's keyframes (``snap_to_keyframes``), then
  ``join.join_chunks`` (stream copy), as the pipeline does;
- single pass: ``bench/plain.py``'s ``transcode_rendition``, one whole-source encode.

Both are scored against the source with ffmpeg's psnr and ssim filters. Goal (issue 10):
the chunked encode no worse than 0.5 dB PSNR. Quality figures do not depend on the machine's
load, only on the commands. The source is cached in ``.cache/bench/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.plain import transcode_rendition  # noqa: E402
from spool.config import Settings  # noqa: E402
from spool.media.chunks import RenditionSpec, encode_chunk  # noqa: E402
from spool.media.join import join_chunks  # noqa: E402
from spool.media.keyframes import keyframe_times  # noqa: E402
from spool.media.probe import probe  # noqa: E402
from spool.media.tools import Limits  # noqa: E402
from spool.models.chunks import output_fps, plan_chunks, snap_to_keyframes  # noqa: E402

CACHE = REPO / ".cache" / "bench"
LIMITS = Limits(timeout_seconds=3600)


def make_source(seconds: float) -> Path:
    """A high-quality 1080p30 clip with detail and motion (cached), a keyframe every 2 s as
    cameras write them (a chunk's seek decodes from the keyframe before it)."""
    path = CACHE / f"quality-{seconds:g}s-1080p30-crf14.mp4"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30,noise=alls=8:allf=t",
            "-t",
            f"{seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "14",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            str(partial),
        ],
        check=True,
    )
    partial.rename(path)
    return path


def scores(encoded: Path, source: Path) -> tuple[float, float]:
    """(PSNR dB, SSIM) of encoded against source, averaged over all frames."""
    graph = "[0:v]split[a][b];[1:v]split[c][d];[a][c]psnr;[b][d]ssim"
    err = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-i",
            str(encoded),
            "-i",
            str(source),
            "-lavfi",
            graph,
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    psnr = re.search(r"PSNR .*average:([\d.]+|inf)", err)
    ssim = re.search(r"SSIM .*All:([\d.]+)", err)
    if not (psnr and ssim):
        raise SystemExit(f"could not read PSNR/SSIM from ffmpeg:\n{err[-2000:]}")
    return float(psnr[1]), float(ssim[1])


async def chunked(
    source: Path, work: Path, height: int, kbps: int, settings: Settings
) -> tuple[Path, int]:
    info = await probe(source)
    spans = snap_to_keyframes(
        plan_chunks(
            info.duration,
            chunk_seconds=settings.chunk_seconds,
            segment_seconds=settings.hls_segment_seconds,
        ),
        await keyframe_times(source, LIMITS) or [],
        fps=output_fps(info.fps),
        segment_seconds=settings.hls_segment_seconds,
    )
    files = []
    for span in spans:
        dst = work / f"chunk-{span.index:05d}.mp4"
        out = await encode_chunk(
            source,
            span,
            [RenditionSpec(dst, height, kbps)],
            fps=output_fps(info.fps),
            segment_seconds=settings.hls_segment_seconds,
            preset=settings.x264_preset,
            thumb_every=None,
            thumb_width=160,
            thumb_dir=None,
            limits=LIMITS,
            on_progress=None,
        )
        files.append(out.files[f"{height}p"])
    joined = work / "chunked.mp4"
    await join_chunks(files, None, joined, limits=LIMITS)
    return joined, len(spans)


async def single_pass(source: Path, work: Path, height: int, kbps: int, settings: Settings) -> Path:
    dst = work / "single.mp4"
    await transcode_rendition(
        source,
        dst,
        height,
        video_kbps=kbps,
        preset=settings.x264_preset,
        has_audio=False,
        limits=LIMITS,
    )
    return dst


def bitrate_kbps(path: Path, seconds: float) -> float:
    return path.stat().st_size * 8 / seconds / 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()
    settings = Settings()
    kbps = settings.bitrate_ladder[args.height]
    source = make_source(args.seconds)
    with tempfile.TemporaryDirectory(prefix="spool-quality-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        joined, count = await chunked(source, work, args.height, kbps, settings)
        chunked_seconds = time.monotonic() - started
        started = time.monotonic()
        single = await single_pass(source, work, args.height, kbps, settings)
        single_seconds = time.monotonic() - started
        rows = [
            (f"chunked ({count} chunks)", joined, chunked_seconds),
            ("single pass", single, single_seconds),
        ]
        measured = [
            (label, *scores(path, source), bitrate_kbps(path, args.seconds), took)
            for label, path, took in rows
        ]
    print(
        f"{args.seconds:g} s {args.height}p30 testsrc2+noise, x264 {settings.x264_preset}, "
        f"{kbps} kbit/s (maxrate 1.5x, bufsize 2x), chunks of at most "
        f"{settings.chunk_seconds:g} s, segments {settings.hls_segment_seconds:g} s"
    )
    print(f"{'':24} {'PSNR dB':>8} {'SSIM':>8} {'kbit/s':>8} {'encode s':>9}")
    for label, psnr, ssim, rate, took in measured:
        print(f"{label:24} {psnr:8.3f} {ssim:8.5f} {rate:8.0f} {took:9.1f}")
    difference = measured[0][1] - measured[1][1]
    verdict = "within" if difference >= -0.5 else "OUTSIDE"
    print(
        f"chunked - single pass: {difference:+.3f} dB PSNR, "
        f"{measured[0][2] - measured[1][2]:+.5f} SSIM ({verdict} the 0.5 dB goal)"
    )


if __name__ == "__main__":
    asyncio.run(main())
