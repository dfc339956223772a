"""Hand-built FrameFacts timelines for the matching tests: campaigns, keyframes, helpers.

``ff`` builds one keyframe whose concept cosines, logos, faces and safety flags are exactly what
a test asks for (through ``fakes.frame_embedding``), so each test states the facts it matches.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.match import MAX_REASONS_PER_CLAUSE, match
from targeting.rules_schema import Campaign
from targeting.types import Placement
from tests.targeting.fakes import FakeEmbedder, frame_embedding
from vision.types import Box, Detection, FrameFacts, LogoMatch, SafetyFlag, TextRead

TODAY = date(2026, 12, 1)

E = FakeEmbedder()

STEP = 0.5

BOX: Box = (0.1, 0.1, 0.4, 0.4)  # area 0.09

SMALL: Box = (0.0, 0.0, 0.1, 0.1)  # area 0.01


def camp(cid: str, **kw: Any) -> Campaign:
    kw.setdefault("target", {"any": [{"logo": {"brand": "acme"}}]})
    kw.setdefault("min_duration_s", 0.0)
    return Campaign.model_validate({"id": cid, **kw})


def ff(
    t: float,
    *,
    emb: dict[str, float] | None = None,
    logos: tuple[tuple[str, float], ...] = (),
    logo_box: Box = BOX,
    faces: tuple[tuple[float, Box], ...] = (),
    safety: tuple[tuple[str, float], ...] = (),
    no_embedding: bool = False,
    media: str = "vid",
    text: tuple[tuple[str, float], ...] = (),
) -> FrameFacts:
    vec = None if no_embedding else frame_embedding(emb or {}, E, seed=int(t * 1000))
    return FrameFacts(
        media_id=media,
        t=t,
        embedding=vec,
        detections=tuple(Detection("face", "FACE_FEMALE", s, b) for s, b in faces),
        logos=tuple(LogoMatch(b, s, logo_box) for b, s in logos),
        safety=tuple(
            SafetyFlag(
                c, s, "detector" if c == "nudity" else "clip", BOX if c == "nudity" else None
            )
            for c, s in safety
        ),
        text=tuple(TextRead(line, s, BOX) for line, s in text),
    )


def run(
    campaigns: list[Campaign], timeline: list[FrameFacts], today: date = TODAY
) -> list[Placement]:
    idx = ConceptIndex.build(campaigns, E, rules_root=Path("."))
    return match(timeline, campaigns, idx, today=today)


def spans(placements: list[Placement], cid: str | None = None) -> list[tuple[float, float]]:
    got = [(p.start_s, p.end_s) for p in placements if cid is None or p.campaign == cid]
    return sorted(got)


def check_reasons(p: Placement) -> None:
    """What every placement must carry: reasons of a clause kind, inside the segment, bounded."""
    assert p.reasons, p
    per_clause: dict[tuple[str, str], int] = {}
    for r in p.reasons:
        assert r.kind in ("concept", "example", "iab", "logo", "face", "text"), r
        assert p.start_s <= r.t <= p.end_s, (r, p)
        assert np.isfinite(r.score)
        assert (r.box is not None) == (r.kind in ("logo", "face", "text")), r
        per_clause[(r.kind, r.detail)] = per_clause.get((r.kind, r.detail), 0) + 1
    assert max(per_clause.values()) <= MAX_REASONS_PER_CLAUSE
    assert 0.0 <= p.score <= 1.0 and p.rank >= 1


SNOW = {"concept": {"prompt": "snowy road", "threshold": 0.3}}

ACME = {"logo": {"brand": "acme"}}

FACE = {"face": {"min_count": 1}}
