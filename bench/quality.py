"""Picture quality of Spool's encodes, two tables.

    .venv/bin/python bench/quality.py [--seconds 60] [--height 1080]
    .venv/bin/python bench/quality.py --ladder [--crf 20,22,24]

Chunked against single pass: a generated 1920x1080 30 fps clip with detail everywhere
(testsrc2 under temporal noise, so the encoder has real work in every frame) is encoded to
one rendition twice, with the same x264 preset and rate settings:

- chunked: ``chunks.encode_chunk`` per chunk of ``plan_chunks`` (the settings' chunk and
  segment lengths) moved onto the source's keyframes (``snap_to_keyframes``), then
  ``join.join_chunks`` (stream copy), as the pipeline does;
- single pass: ``bench/plain.py``'s ``transcode_rendition``, one whole-source encode.

Both are scored against the source with ffmpeg's psnr and ssim filters. Goal (issue 10):
the chunked encode no worse than 0.5 dB PSNR.

``--ladder``: content-aware rates against the fixed ladder over a varied set of sources
(``bench/ladder.py``).

Quality figures do not depend on the machine's load, only on the commands. Sources are
cached in ``.cache/bench/`` (git-ignored).
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

from activities.video.common import rendition_rate  # noqa: E402
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


def scores(encoded: Path, source: Path | list[str]) -> tuple[float, float]:
    """(PSNR dB, SSIM) of encoded against source (a file, or ffmpeg's input arguments for
    one), averaged over all frames; a source of another size is first scaled to the encoded
    picture's, as the pipeline scales it, so only the encoding's loss is measured."""
    reference_input = source if isinstance(source, list) else ["-i", str(source)]
    width, height = picture_size(encoded)
    reference = f"[1:v]scale={width}:{height},setsar=1,split[c][d]"
    graph = f"[0:v]split[a][b];{reference};[a][c]psnr;[b][d]ssim"
    err = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-i",
            str(encoded),
            *reference_input,
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


def picture_size(path: Path) -> tuple[int, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries"]
        + ["stream=width,height", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    width, height = out.strip().split(",")[:2]
    return int(width), int(height)


async def chunked(
    source: Path, work: Path, specs: list[RenditionSpec], settings: Settings
) -> tuple[dict[str, Path], int]:
    """Every rendition of ``specs`` made as the pipeline makes it: chunk by chunk, from one
    decode per chunk, then joined (rendition name -> joined file, how many chunks)."""
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
    parts: dict[str, list[Path]] = {spec.name: [] for spec in specs}
    for span in spans:
        chunk_specs = [
            RenditionSpec(work / f"{s.name}-{span.index:05d}.mp4", s.height, s.video_kbps, s.crf)
            for s in specs
        ]
        out = await encode_chunk(
            source,
            span,
            chunk_specs,
            fps=output_fps(info.fps),
            segment_seconds=settings.hls_segment_seconds,
            preset=settings.x264_preset,
            thumb_every=None,
            thumb_width=160,
            thumb_dir=None,
            limits=LIMITS,
            on_progress=None,
        )
        for name, path in out.files.items():
            parts[name].append(path)
    joined = {}
    for name, files in parts.items():
        joined[name] = work / f"{name}.mp4"
        await join_chunks(files, None, joined[name], limits=LIMITS)
    return joined, len(spans)


async def single_pass(source: Path, work: Path, spec: RenditionSpec, settings: Settings) -> Path:
    dst = work / "single.mp4"
    await transcode_rendition(
        source,
        dst,
        spec.height,
        video_kbps=spec.video_kbps,
        crf=spec.crf,
        preset=settings.x264_preset,
        has_audio=False,
        limits=LIMITS,
    )
    return dst


def bitrate_kbps(path: Path, seconds: float) -> float:
    return path.stat().st_size * 8 / seconds / 1000


async def chunks_against_single_pass(args: argparse.Namespace, settings: Settings) -> None:
    """Issue 10's table: one rendition, chunked against a single pass at the same settings."""
    source = make_source(args.seconds)
    info = await probe(source)
    kbps, crf = rendition_rate(settings, args.height, info)
    with tempfile.TemporaryDirectory(prefix="spool-quality-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        spec = RenditionSpec(work / "chunked.mp4", args.height, kbps, crf)
        files, count = await chunked(source, work, [spec], settings)
        chunked_seconds = time.monotonic() - started
        started = time.monotonic()
        single = await single_pass(source, work, spec, settings)
        single_seconds = time.monotonic() - started
        rows = [
            (f"chunked ({count} chunks)", files[spec.name], chunked_seconds),
            ("single pass", single, single_seconds),
        ]
        measured = [
            (label, *scores(path, source), bitrate_kbps(path, args.seconds), took)
            for label, path, took in rows
        ]
    rate = f"{kbps} kbit/s (maxrate 1.5x" if crf is None else f"CRF {crf:g} (maxrate {kbps}k"
    print(
        f"{args.seconds:g} s {args.height}p30 testsrc2+noise, x264 {settings.x264_preset}, "
        f"{rate}, bufsize 2 s), chunks of at most "
        f"{settings.chunk_seconds:g} s, segments {settings.hls_segment_seconds:g} s"
    )
    print(f"{'':24} {'PSNR dB':>8} {'SSIM':>8} {'kbit/s':>8} {'encode s':>9}")
    for label, psnr, ssim, rate_kbps, took in measured:
        print(f"{label:24} {psnr:8.3f} {ssim:8.5f} {rate_kbps:8.0f} {took:9.1f}")
    difference = measured[0][1] - measured[1][1]
    verdict = "within" if difference >= -0.5 else "OUTSIDE"
    print(
        f"chunked - single pass: {difference:+.3f} dB PSNR, "
        f"{measured[0][2] - measured[1][2]:+.5f} SSIM ({verdict} the 0.5 dB goal)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", action="store_true", help="the content-aware ladder table")
    parser.add_argument(
        "--crf", help="x264's CRF, or several for --ladder: 20,22 (default: the settings')"
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()
    settings = Settings()
    crfs = [float(c) for c in args.crf.split(",")] if args.crf else [settings.x264_crf]
    if args.ladder:
        from bench.ladder import ladder_table

        await ladder_table(settings, crfs)
    else:
        settings = settings.model_copy(update={"x264_crf": crfs[0]})
        await chunks_against_single_pass(args, settings)


if __name__ == "__main__":
    asyncio.run(main())
