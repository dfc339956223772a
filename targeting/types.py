"""Placements and their reasons: what targeting hands to serving.

A placement nobody can explain is a bug, so ``Placement`` refuses to exist without reasons.
Times are seconds from the start of the media; boxes are normalized xyxy (see vision.types).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from vision.types import Box, check_box

ReasonKind = Literal["concept", "iab", "logo", "face", "example", "text", "exclusion"]


@dataclass(frozen=True)
class Reason:
    """Why a placement happened (or, kind ``exclusion``, why a segment was blocked).

    ``what`` names the thing that matched: a brand, a prompt, an IAB id, a safety category.
    ``score`` is how strongly, ``t`` the keyframe time in seconds, ``box`` where (if a box).
    """

    kind: ReasonKind
    what: str
    score: float
    t: float
    box: Box | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if not math.isfinite(self.score):
            raise ValueError(f"Reason.score must be finite, got {self.score!r}")
        if self.box is not None:
            object.__setattr__(self, "box", check_box(self.box))

    def to_json(self) -> dict[str, object]:
        """The design's JSONL reason shape: ``kind`` plus what matched, score, t and box.

        A logo reason says ``brand``, a concept ``prompt``, an IAB target ``iab``, a face
        ``label``, a text target ``text`` (the phrase that was read) and an exclusion
        ``category``: the field names the design's contract uses.
        """
        key = {
            "logo": "brand",
            "concept": "prompt",
            "example": "example",
            "iab": "iab",
            "face": "label",
            "text": "text",
            "exclusion": "category",
        }[self.kind]
        out: dict[str, object] = {"kind": self.kind, key: self.what, "score": round(self.score, 4)}
        out["t"] = round(self.t, 3)
        if self.box is not None:
            out["box"] = [round(v, 4) for v in self.box]
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Placement:
    """A campaign fits media ``media`` from ``start_s`` to ``end_s`` with ``score`` (0..1)."""

    campaign: str
    media: str
    start_s: float
    end_s: float
    score: float
    reasons: tuple[Reason, ...]
    advertiser: str = ""
    bid_cpm: float = 1.0
    rank: int = 0

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError(
                f"Placement for {self.campaign!r} has no reasons: nobody could explain it"
            )
        if not (0 <= self.start_s <= self.end_s) or not math.isfinite(self.end_s):
            raise ValueError(
                f"Placement needs 0 <= start_s <= end_s, got {self.start_s}..{self.end_s}"
            )

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_json(self) -> dict[str, object]:
        """One JSONL line of ``onscreen scan``: the design's contract (extend, never rename)."""
        return {
            "media": self.media,
            "campaign": self.campaign,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "score": round(self.score, 4),
            "reasons": [r.to_json() for r in self.reasons],
            "advertiser": self.advertiser,
            "bid_cpm": self.bid_cpm,
            "rank": self.rank,
        }
