"""targeting.text_match: case, word boundaries, OCR confusions and the edit budget."""

from __future__ import annotations

import pytest

from targeting.text_match import (
    EDIT_CHARS_PER_ERROR,
    canonical_words,
    edit_budget,
    phrase_edits,
)


def test_canonical_words_fold_case_width_and_confusions() -> None:
    assert canonical_words("ACME Motors!") == ("acme", "motors")
    assert canonical_words("ＡＣＭＥ") == ("acme",)  # full-width letters
    assert canonical_words("TYRE5 5O% 1ce") == canonical_words("tyres SO% lce")
    assert canonical_words("modern") == canonical_words("rnodem")
    assert canonical_words("--- !!! ---") == ()
    assert canonical_words("snake_case") == ("snake", "case")  # '_' separates words


@pytest.mark.parametrize(
    "phrase, line, edits",
    [
        ("acme", "ACME", 0),
        ("acme", "Drive an ACME today.", 0),
        ("acme", "AcrnE", 0),  # rn read for m
        ("acme", "acmeplex", None),  # whole words only
        ("acme", "acne", None),  # under 5 characters: exact (after confusions)
        ("winter tyres", "WINTER TYRE5", 0),  # 5 for S
        ("winter tyres", "W1NTER TYRES", 0),  # 1 for I
        ("winter tyres", "winter tyrs", 1),  # a dropped letter, within 12 // 5 = 2
        ("winter tyres", "wnter tyrs", 2),
        ("winter tyres", "wntr tyrs", None),  # 3 edits: over the budget
        ("winter tyres", "tyres winter", None),  # words in order
        ("winter tyres", "winter", None),
        ("winter tyres", "big winter tyres sale", 0),
        ("winter tyres", "WINTERTYRESSALE", 0),  # OCR dropped the blanks (PP-OCRv4 does)
        ("winter tyres", "BIG WINTERTYRES", 0),
        ("winter tyres", "WINTERTYRSSALE", None),  # joined form: exact only
        ("tyres", "WINTERTYRESSALE", None),  # one word: whole words only, even joined
        ("snow", "SN0W", 0),  # 0 for O
    ],
)
def test_phrase_edits(phrase: str, line: str, edits: int | None) -> None:
    assert phrase_edits(canonical_words(phrase), canonical_words(line)) == edits


def test_edit_budget_is_one_per_five_characters() -> None:
    assert EDIT_CHARS_PER_ERROR == 5
    assert [edit_budget(canonical_words(p)) for p in ("acme", "tyres", "winter tyres")] == [0, 1, 2]
