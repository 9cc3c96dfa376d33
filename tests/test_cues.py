"""Caption cues shaped from timed words (spool/cues.py): the shape rules a broadcast style
guide sets, on word timings chosen here."""

from __future__ import annotations

import pytest

from spool.cues import (
    MAX_CHARS_PER_SECOND,
    MAX_LINE_CHARS,
    MAX_SECONDS,
    MIN_SECONDS,
    Cue,
    Word,
    break_lines,
    cues_from_words,
    settle_timing,
)
from tests.support.caption_rules import shape_problems

pytestmark = pytest.mark.unit


def spoken(text: str, start: float = 0.0, per_word: float = 0.3) -> list[Word]:
    """Words said one after another, ``per_word`` seconds each."""
    return [
        Word(start + n * per_word, start + (n + 1) * per_word, word)
        for n, word in enumerate(text.split())
    ]


def test_a_cue_starts_at_its_first_word_and_ends_after_its_last():
    [cue] = cues_from_words(spoken("Hello world, this is a test.", start=12.0))
    assert cue.start == 12.0 and cue.end == pytest.approx(12.0 + 6 * 0.3)
    assert cue.text == "Hello world, this is a test."


def test_sentences_are_cues_of_their_own():
    got = cues_from_words(spoken("It rains. The sun is out now. Where is my hat?"))
    assert [c.text for c in got] == ["It rains.", "The sun is out now.", "Where is my hat?"]


def test_a_long_sentence_splits_at_a_clause_end_into_two_line_cues():
    text = (
        "When the committee finally met on Thursday afternoon in the old library, "
        "nobody had read the report that the consultants had delivered three weeks before."
    )
    got = cues_from_words(spoken(text, per_word=0.25))
    assert len(got) >= 2
    assert got[0].text.replace("\n", " ").endswith("library,")  # split where the clause ends
    assert " ".join(c.text.replace("\n", " ") for c in got) == text
    for cue in got:
        lines = cue.text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= MAX_LINE_CHARS for line in lines), cue


def test_no_cue_stays_up_past_the_longest_time_even_for_slow_speech():
    got = settle_timing(cues_from_words(spoken("one two three four five six", per_word=2.0)))
    assert len(got) >= 2
    assert all(c.end - c.start <= MAX_SECONDS for c in got), got


def test_a_short_cue_is_held_long_enough_to_read_but_never_over_the_next():
    got = settle_timing(
        [
            Cue(1.0, 1.2, "Yes."),
            Cue(1.5, 4.0, "Then we go."),
            Cue(9.0, 9.3, "A long goodbye to all."),
        ]
    )
    assert got[0].end == 1.5  # wanted a second, the next cue starts at 1.5
    assert got[1].end == 4.0
    # alone at the end: a second at least, and no faster than 20 characters a second
    assert got[2].end == pytest.approx(9.0 + max(MIN_SECONDS, 22 / MAX_CHARS_PER_SECOND))


def test_lines_break_after_punctuation_when_both_lines_fit():
    lines = break_lines("We went to the market, and then we walked home slowly.")
    assert lines == ["We went to the market,", "and then we walked home slowly."]
    assert break_lines("Short enough.") == ["Short enough."]


def test_the_rules_catch_what_they_forbid():
    bad = [Cue(0.0, 9.0, "x" * 50), Cue(8.0, 8.1, "a\nb\nc")]
    found = shape_problems(bad)
    assert any("longer than 7" in x for x in found)
    assert any("line of 50" in x for x in found)
    assert any("3 lines" in x for x in found)
    assert any("overlaps" in x for x in found)
