"""Whisper on this machine: plain ``transcribe`` against faster-whisper's batched, VAD-split
``BatchedInferencePipeline`` on long speech, and a warm model's memory across jobs.

    .venv/bin/python bench/whisper.py [--seconds 60 300] [--rounds 2] [--jobs 10]

1. Speed and quality: espeak-ng speech of each length (16 kHz mono WAV, cached in
   ``.cache/bench/``), transcribed by ``spool.whisper.transcribe`` with the plain and the
   batched method alternately, ``--rounds`` times each, side by side in one run (the machine
   is shared: compare within a run). Quality: word error rate against the spoken text, and
   the longest caption cue (a batched segment can span a whole VAD chunk).
2. Warm model: ``--jobs`` transcriptions of the first clip in this one process, with the
   process's RSS after each (a warm model must not grow per job) and the model loads counted
   through ``spool.whisper.on_model_load``.
3. Threads: two transcriptions of the same clip at once, from two threads sharing the one
   model, give the same words as one alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from spool.process import single_threaded_blas  # noqa: E402

single_threaded_blas()  # before numpy, as the worker does

from spool import whisper  # noqa: E402
from spool.config import Settings  # noqa: E402

CACHE = REPO / ".cache" / "bench"
SENTENCES = [
    "Spool runs the background work of a media and publishing product as durable workflows.",
    "A client hands work over and gets a job identifier back at once.",
    "Worker processes do the heavy steps at their own pace, and each step retries on its own.",
    "The video pipeline probes the upload, encodes every rendition and writes the captions.",
    "Captions are made by a speech recognition model that runs on the processor.",
    "Every file passes between steps through object storage, never through a shared disk.",
    "A failed branch is recorded in the status of the job while the other branches go on.",
    "The blog pipeline indexes a post, counts it once and tells the followers about it.",
]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: list[str], heard: list[str]) -> float:
    """Levenshtein distance over words / reference length."""
    previous = list(range(len(heard) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(heard, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1] / max(1, len(reference))


def spoken_text(seconds: float) -> str:
    """Enough sentences for ``seconds`` of espeak-ng at 150 words a minute."""
    needed = int(seconds * 150 / 60)
    out: list[str] = []
    while sum(len(s.split()) for s in out) < needed:
        out.append(SENTENCES[len(out) % len(SENTENCES)])
    return " ".join(out)


def speech_wav(seconds: float) -> tuple[Path, str]:
    """A 16 kHz mono WAV of espeak-ng speech and the text it says."""
    CACHE.mkdir(parents=True, exist_ok=True)
    text = spoken_text(seconds)
    wav = CACHE / f"whisper-speech-{int(seconds)}s.wav"
    if not wav.exists():
        raw = CACHE / f"whisper-speech-{int(seconds)}s.raw.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(raw),
                "-ac",
                "1",
                "-ar",
                "16000",
                str(wav),
            ],
            check=True,
        )
        raw.unlink()
    return wav, text


def duration_of(wav: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(wav)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(
    wav: Path, settings: Settings, batched: bool
) -> tuple[float, float, list[whisper.Segment]]:
    """Wall seconds, CPU seconds of this process (every thread: less moved by other load on
    a shared machine than the wall time) and the segments."""
    started, cpu = time.perf_counter(), time.process_time()
    segments = whisper.transcribe(wav, settings=settings, batched=batched)
    return time.perf_counter() - started, time.process_time() - cpu, segments


def compare(seconds: list[float], rounds: int, settings: Settings) -> None:
    print("| audio | method | round | time | × real time | CPU time | WER | cues | longest cue |")
    print("|---|---|---|---|---|---|---|---|---|")
    for length in seconds:
        wav, text = speech_wav(length)
        audio = duration_of(wav)
        reference = words(text)
        for round_no in range(1, rounds + 1):
            # Alternate which goes first, so neither always meets a warmer cache.
            order = (False, True) if round_no % 2 else (True, False)
            for batched in order:
                took, cpu, segments = timed(wav, settings, batched)
                heard = words(" ".join(s.text for s in segments))
                longest = max((s.end - s.start for s in segments), default=0.0)
                print(
                    f"| {audio:.0f} s | {'batched' if batched else 'plain'} | {round_no} "
                    f"| {took:.1f} s | {audio / took:.1f}× | {cpu:.1f} s "
                    f"| {word_error_rate(reference, heard):.3f} | {len(segments)} "
                    f"| {longest:.1f} s |",
                    flush=True,
                )


def warm_memory(jobs: int, settings: Settings, seconds: float) -> None:
    loads: list[str] = []
    whisper.on_model_load(loads.append)
    wav, _ = speech_wav(seconds)
    print(
        f"\nwarm model, {jobs} jobs of {duration_of(wav):.0f} s in one process "
        f"(RSS before them: {rss_mib():.0f} MiB):"
    )
    for job in range(1, jobs + 1):
        whisper.transcribe(wav, settings=settings)
        print(f"  job {job}: RSS {rss_mib():.0f} MiB, model loads so far {len(loads)}", flush=True)


def threads_agree(settings: Settings, seconds: float) -> None:
    wav, _ = speech_wav(seconds)
    alone = words(" ".join(s.text for s in whisper.transcribe(wav, settings=settings)))
    results: list[list[str]] = [[], []]

    def run(slot: int) -> None:
        segments = whisper.transcribe(wav, settings=settings)
        results[slot] = words(" ".join(s.text for s in segments))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    same = all(r == alone for r in results)
    print(f"\ntwo threads at once on one model: {'same words as alone' if same else 'DIFFER'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60, 300])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    settings = Settings()
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"model {whisper.resolve_model(settings)} ({settings.whisper_compute_type}), "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    whisper.preload(settings)
    compare(args.seconds, args.rounds, settings)
    warm_memory(args.jobs, settings, args.seconds[0])
    threads_agree(settings, args.seconds[0])


if __name__ == "__main__":
    main()
