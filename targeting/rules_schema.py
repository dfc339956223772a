"""The advertisers' campaign file format, as pydantic models (the contract in DESIGN.md).

Strict by design: unknown keys, wrong types and out-of-range numbers are errors, because a typo
that silently does nothing (``treshold: 0.3``) costs an advertiser money without telling them.
Cross-file checks (unknown brand, missing example image, duplicate ids, unknown IAB id or
safety class) need the whole directory and live in ``targeting.rules_loader``.

Only ``id`` and ``target`` are required. Defaults below are the ones the design promises.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from targeting.text_match import MAX_TEXT_PHRASE_CHARS, MAX_TEXT_PHRASES, canonical_words
from vision.brands import BRAND_SLUG

DEFAULT_PROMPT_THRESHOLD = 0.25
"""Cosine similarity (CLIP ViT-B-32 image vs text) at which a prompt concept holds."""
DEFAULT_EXAMPLE_THRESHOLD = 0.8
"""Cosine similarity (image vs example image) at which an example concept holds."""
DEFAULT_EXCLUDE_THRESHOLD = 0.25
"""Cosine similarity at which an excluded concept blocks a frame."""
DEFAULT_LOGO_MIN_SCORE = 0.5
"""Logo score (0..1) at which a logo clause holds, unless the clause says otherwise."""
DEFAULT_FACE_MIN_AREA = 0.0
"""Smallest face box (fraction of the frame) that counts, unless the clause says otherwise."""
DEFAULT_IAB_TOP_K = 3
"""An ``iab`` clause holds when a listed category (or a child of it) is in the frame's top K."""
DEFAULT_MIN_DURATION_S = 1.0
DEFAULT_GAP_S = 1.0
"""Matching keyframes closer than this (seconds) belong to one segment."""
DEFAULT_BID_CPM = 1.0
DEFAULT_TEXT_MIN_SCORE = 0.5
"""OCR score (0..1, mean character confidence) at which a read counts for a text clause."""

Score = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]
"""A score or cosine threshold, 0..1. Every number in the schema is ``strict``: ``true`` is not
1.0 and ``"0.3"`` (quoted) is not 0.3 (pydantic's lax mode would take both silently); an
integer is fine where a float is expected (``bid_cpm: 4``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Flight(_Strict):
    """Dates (inclusive) between which the campaign runs; either end may be open."""

    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Flight:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"flight end {self.end} is before start {self.start}")
        return self

    def active_on(self, day: date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


class Concept(_Strict):
    """A text prompt or example images, compared with the frame by cosine similarity."""

    prompt: str | None = Field(default=None, min_length=1, max_length=300)
    examples: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=32)
    threshold: Score | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Concept:
        if (self.prompt is None) == (self.examples is None):
            raise ValueError("a concept needs exactly one of 'prompt' or 'examples'")
        return self

    @property
    def effective_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return DEFAULT_PROMPT_THRESHOLD if self.prompt is not None else DEFAULT_EXAMPLE_THRESHOLD


class Logo(_Strict):
    """A brand's logo on screen; the brand must have reference images in ``brands/<brand>/``."""

    brand: str = Field(min_length=1, pattern=BRAND_SLUG.pattern)
    min_score: Score = DEFAULT_LOGO_MIN_SCORE
    min_area: Score = 0.0


class Face(_Strict):
    """Faces on screen: at least ``min_count`` faces each covering ``min_area`` of the frame."""

    min_count: int = Field(default=1, ge=1, le=100, strict=True)
    max_count: int | None = Field(default=None, ge=1, le=100, strict=True)
    min_area: Score = DEFAULT_FACE_MIN_AREA
    min_score: Score = 0.4

    @model_validator(mode="after")
    def _counts(self) -> Face:
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError(f"max_count {self.max_count} is below min_count {self.min_count}")
        return self


class Iab(_Strict):
    """IAB Content Taxonomy 3.1 categories; a parent id also matches its children."""

    ids: tuple[str, ...] = Field(min_length=1)
    top_k: int = Field(default=DEFAULT_IAB_TOP_K, ge=1, le=50, strict=True)
    threshold: Score | None = None

    @field_validator("ids", mode="before")
    @classmethod
    def _ids_as_str(cls, v: object) -> object:
        if isinstance(v, list | tuple):
            return tuple(str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v)
        return v


def _check_phrases(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """Phrases as written (stripped); each must hold a word (letters or digits) to look for."""
    out = []
    for i, phrase in enumerate(phrases):
        phrase = phrase.strip()
        if len(phrase) > MAX_TEXT_PHRASE_CHARS:
            raise ValueError(
                f"phrase {i + 1} has {len(phrase)} characters, more than {MAX_TEXT_PHRASE_CHARS}"
            )
        if not canonical_words(phrase):
            raise ValueError(f"phrase {i + 1} has no letters or digits to look for on screen")
        out.append(phrase)
    return tuple(out)


class Text(_Strict):
    """On-screen text read by OCR: any of the phrases, matched as described in
    ``targeting.text_match`` (case-insensitive, whole words, OCR confusions tolerated), in a
    read whose score is at least ``min_score``."""

    any: tuple[str, ...] = Field(min_length=1, max_length=MAX_TEXT_PHRASES)
    min_score: Score = DEFAULT_TEXT_MIN_SCORE

    @field_validator("any")
    @classmethod
    def _phrases(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_phrases(v)


CLAUSE_KINDS = ("concept", "logo", "face", "iab", "text")
"""The keys a target entry may have (exactly one of them)."""


class Clause(_Strict):
    """One target condition: exactly one of ``concept``, ``logo``, ``face``, ``iab``, ``text``."""

    concept: Concept | None = None
    logo: Logo | None = None
    face: Face | None = None
    iab: Iab | None = None
    text: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _iab_shorthand(cls, data: object) -> object:
        # `- iab: [483, 484]` is the short form of `- iab: {ids: [483, 484]}`.
        if isinstance(data, dict) and isinstance(data.get("iab"), list):
            return {**data, "iab": {"ids": data["iab"]}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Clause:
        set_ = [k for k in CLAUSE_KINDS if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(
                f"each target entry needs exactly one of {', '.join(CLAUSE_KINDS)}"
                + (f" (got {', '.join(set_)})" if set_ else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CLAUSE_KINDS if getattr(self, k) is not None)


class Target(_Strict):
    """``any``: one clause is enough; ``all``: every clause must hold. Both: all and one of any."""

    any: tuple[Clause, ...] = ()
    all: tuple[Clause, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Target:
        if not self.any and not self.all:
            raise ValueError("target needs at least one clause under 'any' or 'all'")
        return self

    @property
    def clauses(self) -> tuple[Clause, ...]:
        return self.all + self.any


class Exclude(_Strict):
    """Brand safety: any hit blocks the keyframe (and so the segment around it)."""

    safety: tuple[str, ...] = ()
    concepts: tuple[Concept, ...] = ()
    logos: tuple[Logo, ...] = ()
    text: tuple[str, ...] = Field(default=(), max_length=MAX_TEXT_PHRASES)
    """Phrases that block a keyframe when OCR reads one (score >= DEFAULT_TEXT_MIN_SCORE)."""

    @field_validator("text")
    @classmethod
    def _phrases(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_phrases(v)


class Campaign(_Strict):
    """One campaign file (``campaigns/*.yaml``)."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    target: Target
    advertiser: str = ""
    description: str = ""
    bid_cpm: float = Field(default=DEFAULT_BID_CPM, gt=0.0, le=10_000.0, strict=True)
    flight: Flight | None = None
    exclude: Exclude = Exclude()
    min_duration_s: float = Field(default=DEFAULT_MIN_DURATION_S, ge=0.0, le=3600.0, strict=True)
    gap_s: float = Field(default=DEFAULT_GAP_S, ge=0.0, le=60.0, strict=True)

    def active_on(self, day: date) -> bool:
        return self.flight is None or self.flight.active_on(day)
