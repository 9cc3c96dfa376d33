"""Checks of what the media tools made: live ffmpeg processes, caption files, playlists."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path


def ffprobe_json(target: Path | str, *args: str, cwd: Path | None = None) -> dict:
    """ffprobe's JSON answer about ``target`` (a local file, or a URL or other input given as
    a string), with ``args`` choosing what it shows. Plain ffprobe, no whitelists: the inputs
    are the test's own. A thread may call it while this event loop serves the URL it reads."""
    source = f"file:{target}" if isinstance(target, Path) else target
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, source],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"ffprobe refused {source}: {done.stderr}"
    return json.loads(done.stdout)


def ffmpeg_processes(marker: str) -> list[int]:
    """Pids of live ffmpeg/ffprobe processes whose command line mentions marker."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().decode("utf-8", "replace").split("\0")
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and cmd
            and Path(cmd[0]).name in ("ffmpeg", "ffprobe")
            and any(marker in part for part in cmd)
        ):
            pids.append(int(entry))
    return pids


def playlist_uris(text: str) -> list[str]:
    """The URI lines of an HLS playlist."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


VTT_TIME = r"\d{2}:\d{2}:\d{2}\.\d{3}"
SRT_TIME = r"\d{2}:\d{2}:\d{2},\d{3}"


def check_vtt(text: str, cues: int) -> None:
    """``text`` is WebVTT with ``cues`` well-formed cues."""
    assert text.startswith("WEBVTT\n\n")
    blocks = [b for b in text.split("\n\n")[1:] if b.strip()]
    assert len(blocks) == cues
    for block in blocks:
        lines = block.splitlines()
        assert re.fullmatch(rf"{VTT_TIME} --> {VTT_TIME}", lines[1]), block
        assert lines[2] and "-->" not in lines[2]


def check_srt(text: str, cues: int) -> None:
    """``text`` is SubRip with ``cues`` numbered, well-formed cues."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert len(blocks) == cues
    for i, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert lines[0] == str(i)
        assert re.fullmatch(rf"{SRT_TIME} --> {SRT_TIME}", lines[1]), block
        assert lines[2] and "-->" not in lines[2]
