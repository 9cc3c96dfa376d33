"""Caption cues shaped from timed words, the way broadcast style guides shape subtitles.

A cue starts when its first word is spoken and ends after its last, holds at most two lines of
at most 42 characters, stays on screen 1 to 7 seconds, asks at most 20 characters a second of
its reader, and is split at a sentence or clause end when it has to be split. No I/O: the
transcribe step feeds it Whisper's word timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_LINE_CHARS = 42
MIN_SECONDS = 1.0
MAX_SECONDS = 7.0
MAX_CHARS_PER_SECOND = 20.0
SENTENCE_ENDS = (".", "?", "!", "…")
CLAUSE_ENDS = (",", ";", ":", "—", "-")


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str  # without surrounding blanks


@dataclass
class Cue:
    start: float
    end: float
    text: str  # its lines, joined by "\n"


def group_words(words: Iterable[Word]) -> list[list[Word]]:
    """The words in cue-sized runs: a run ends at a sentence end, or before a word that would
    not fit in two lines or would keep it on screen past MAX_SECONDS; a run that has to end
    mid-sentence ends at its last clause end when it has one."""
    runs: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current and not _fits(current, word):
            keep, carry = _split_at_clause(current)
            runs.append(keep)
            current = carry
        current.append(word)
        if word.text.endswith(SENTENCE_ENDS):
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _fits(run: list[Word], word: Word) -> bool:
    lines = break_lines(_joined([*run, word]))
    return (
        all(len(line) <= MAX_LINE_CHARS for line in lines)
        and word.end - run[0].start <= MAX_SECONDS
    )


def _split_at_clause(run: list[Word]) -> tuple[list[Word], list[Word]]:
    """(the run up to its last clause end, the rest); the whole run when it has none, or
    when the rest would be most of it."""
    for at in range(len(run) - 1, 0, -1):
        if run[at - 1].text.endswith(CLAUSE_ENDS) and at >= len(run) / 2:
            return run[:at], run[at:]
    return run, []


def _joined(words: list[Word]) -> str:
    return " ".join(word.text for word in words)


def break_lines(text: str) -> list[str]:
    """The text in one line, or two broken at the space that keeps both within
    MAX_LINE_CHARS, after punctuation when it can, else the most even pair. A text no break
    fits (a run of very long words) keeps its least-over break: the cue grouping never makes
    one, but a single word longer than a line has nowhere else to go."""
    if len(text) <= MAX_LINE_CHARS:
        return [text]
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if not spaces:
        return [text]

    def badness(at: int) -> tuple[int, int, int]:
        first, second = text[:at], text[at + 1 :]
        over = max(0, len(first) - MAX_LINE_CHARS) + max(0, len(second) - MAX_LINE_CHARS)
        after_punctuation = 0 if first.endswith(SENTENCE_ENDS + CLAUSE_ENDS) else 1
        return over, after_punctuation, abs(len(first) - len(second))

    best = min(spaces, key=badness)
    return [text[:best], text[best + 1 :]]


def cues_from_words(words: Iterable[Word]) -> list[Cue]:
    """Cues timed by their words: from the first word's start to the last word's end."""
    return [
        Cue(run[0].start, run[-1].end, "\n".join(break_lines(_joined(run))))
        for run in group_words(words)
        if run
    ]


def settle_timing(cues: list[Cue]) -> list[Cue]:
    """Each cue held long enough to read (MIN_SECONDS, MAX_CHARS_PER_SECOND) where the gap
    before the next cue allows, never past MAX_SECONDS, never over the next cue."""
    ordered = sorted(cues, key=lambda cue: cue.start)
    settled: list[Cue] = []
    for n, cue in enumerate(ordered):
        chars = len(cue.text.replace("\n", " "))
        wanted = max(cue.end, cue.start + MIN_SECONDS, cue.start + chars / MAX_CHARS_PER_SECOND)
        end = min(wanted, cue.start + MAX_SECONDS)
        if n + 1 < len(ordered):
            end = min(end, max(cue.end, ordered[n + 1].start))
        settled.append(Cue(cue.start, max(end, cue.start + 0.001), cue.text))
    return settled
