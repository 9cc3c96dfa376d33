"""The shape a caption cue must keep, stated once for the tests: at most two lines of at most
42 characters, 1 to 7 seconds on screen (shorter only when the next cue starts sooner), at
most 20 characters a second, never over the next cue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Timed(Protocol):
    start: float
    end: float
    text: str


MAX_LINE_CHARS, MAX_LINES = 42, 2
MIN_SECONDS, MAX_SECONDS, MAX_CPS = 1.0, 7.0, 20.0
SLACK = 0.002  # rounding of stored times to the millisecond


def shape_problems(cues: Sequence[Timed]) -> list[str]:
    """Every rule a list of cues breaks, as sentences; empty when all hold."""
    found: list[str] = []
    for n, cue in enumerate(cues):
        seconds = cue.end - cue.start
        following = cues[n + 1] if n + 1 < len(cues) else None
        lines = cue.text.split("\n")
        name = f"cue {n + 1} ({cue.start:.3f}-{cue.end:.3f} {cue.text!r})"
        if len(lines) > MAX_LINES:
            found.append(f"{name} has {len(lines)} lines")
        found += [
            f"{name} has a line of {len(line)} characters"
            for line in lines
            if len(line) > MAX_LINE_CHARS
        ]
        if seconds > MAX_SECONDS + SLACK:
            found.append(f"{name} is longer than 7 s")
        cut_short = following is not None and following.start - cue.end <= SLACK
        if seconds < MIN_SECONDS - SLACK and not cut_short:
            found.append(f"{name} is shorter than 1 s with room after it")
        chars = len(" ".join(lines))
        if seconds > 0 and chars / seconds > MAX_CPS + 0.01 and not cut_short:
            found.append(f"{name} asks {chars / seconds:.1f} characters a second")
        if following is not None and following.start < cue.end - SLACK:
            found.append(f"{name} overlaps the next")
    return found
