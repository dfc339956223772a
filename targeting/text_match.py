"""On-screen text (OCR reads) against campaign phrases: case-insensitive, on word boundaries,
tolerant of OCR's usual confusions within a documented bound.

Both the phrase and each OCR line are brought to one *canonical* form, then compared word by
word:

1. Unicode NFKC and case folding (``ACME`` = ``acme``, full-width letters = ASCII ones);
2. the confusions OCR makes most, folded to one character on both sides (``OCR_CONFUSIONS``):
   ``rn`` -> ``m``, ``0`` -> ``o``, ``1``/``i``/``|`` -> ``l``, ``5`` -> ``s``. So ``ACME`` matches
   a read ``ACrnE``, ``SALE 50%`` matches ``SALE S0%``, ``tyres`` matches ``TYRE5``. The price: two
   words that differ only by such a pair (``mile``/``rnlle``) are the same word here;
3. words are runs of letters and digits (anything else separates words), so a phrase matches
   whole words only: ``acme`` is found in ``ACME Motors`` and ``the acme.`` but not in
   ``acmeplex``;
4. the phrase's words must match as many consecutive words of one OCR line (a phrase does not
   span two lines), within ``len(phrase) // EDIT_CHARS_PER_ERROR`` character edits
   (Levenshtein, counted on the canonical words joined by one space): phrases under 5 characters
   must match exactly, ``winter tyres`` (12) may have 2 edits;
5. OCR models drop the blanks between Latin words (PP-OCRv4 reads a banner "WINTER TYRES SALE"
   as ``WINTERTYRESSALE``): a phrase of two words or more also matches when its words, joined
   with no blank, stand inside one word of the line, exactly. One-word phrases keep step 3's
   whole-word rule (``acme`` is still not in ``acmeplex``): the joined form of a multi-word
   phrase is long and specific enough that finding it inside a longer run is not chance.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

OCR_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("rn", "m"),
    ("0", "o"),
    ("1", "l"),
    ("i", "l"),
    ("|", "l"),
    ("5", "s"),
)
"""Character confusions folded away (applied in this order, after case folding)."""
EDIT_CHARS_PER_ERROR = 5
"""One character edit (insert, delete, substitute) is tolerated per this many phrase characters."""
MAX_TEXT_PHRASE_CHARS = 100
"""Longest phrase a text clause may name, in characters."""
MAX_TEXT_PHRASES = 50
"""Most phrases in one text clause or exclusion."""

_WORD = re.compile(r"[^\W_]+")


def canonical_words(text: str) -> tuple[str, ...]:
    """The words of ``text`` in canonical form (see the module docstring, steps 1-3)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    for seen, means in OCR_CONFUSIONS:
        folded = folded.replace(seen, means)
    return tuple(_WORD.findall(folded))


def edit_budget(words: Sequence[str]) -> int:
    """Character edits tolerated for a phrase of these canonical words."""
    return len(" ".join(words)) // EDIT_CHARS_PER_ERROR


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def phrase_edits(phrase: Sequence[str], line: Sequence[str]) -> int | None:
    """Fewest edits with which ``phrase`` (canonical words) reads in ``line`` (canonical words),
    or None when it does not, within its ``edit_budget`` (module docstring, step 4)."""
    k = len(phrase)
    if k == 0 or not line:
        return None
    want = " ".join(phrase)
    budget = edit_budget(phrase)
    best: int | None = None
    for start in range(len(line) - k + 1):
        got = " ".join(line[start : start + k])
        if got == want:
            return 0
        if budget:
            d = _distance(want, got, budget)
            if d <= budget and (best is None or d < best):
                best = d
    if best is None and k >= 2:
        joined = "".join(phrase)
        if any(joined in word for word in line):
            return 0
    return best
