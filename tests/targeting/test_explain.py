"""FrameDecision per keyframe and campaign (targeting.explain)."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from targeting.concept_index import ConceptIndex
from targeting.match import FrameDecision, explain_frames, match
from tests.targeting.timelines import ACME, BOX, FACE, SNOW, STEP, TODAY, E, camp, ff
from vision.types import FrameFacts


def test_explain_frames_covers_every_keyframe_and_campaign() -> None:
    cs = [camp("a"), camp("b", target={"any": [SNOW]}, exclude={"safety": ["violence"]})]
    timeline = [
        ff(0.5, emb={"snowy road": 0.4}, safety=(("violence", 0.7),)),
        ff(0.0, logos=(("acme", 0.9),)),
    ]
    idx = ConceptIndex.build(cs, E, rules_root=Path("."))
    got = explain_frames(timeline, cs, idx)
    assert [(d.t, d.campaign, d.placed) for d in got] == [
        (0.0, "a", True),
        (0.0, "b", False),
        (0.5, "a", False),
        (0.5, "b", False),
    ]
    d: FrameDecision = got[3]
    assert d.target and d.blocked and d.evidence > 0.5 and d.media == "vid"
    assert [(r.kind, r.what) for r in d.matched] == [("concept", "snowy road")]
    assert [(r.what, round(r.score, 2)) for r in d.blocking] == [("violence", 0.7)]
    assert explain_frames(timeline, cs, idx, today=date(2020, 1, 1)) != []
    assert explain_frames(timeline, [cs[0]], idx) == got[0::2]


# ------------------------------------------- defect 11: the explanation matches the decision


def alternating_faces(n: int = 12) -> list[FrameFacts]:
    """Face scores alternating around the face clause's min_score (0.4): 0.5, 0.3, 0.5, ..."""
    return [ff(i * STEP, faces=((0.5 if i % 2 == 0 else 0.3, BOX),)) for i in range(n)]


def test_alternating_scores_place_nothing_and_the_explanation_says_why() -> None:
    c = camp("presenter", target={"all": [FACE]}, gap_s=0.5, min_duration_s=2.0)
    timeline = alternating_faces()
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    assert match(timeline, [c], idx, today=TODAY) == []
    got = explain_frames(timeline, [c], idx, today=TODAY)
    assert [d.placed for d in got] == [False] * 12
    assert [d.target for d in got] == [i % 2 == 0 for i in range(12)]
    assert got[2].why_not == "segment 1-1.5 s lasts 0.5 s, shorter than min_duration_s 2"
    assert got[3].why_not == "target not met: target.all[0] (face) does not hold"
    assert got[2].to_json() == {
        "campaign": "presenter",
        "placed": False,
        "target": True,
        "blocked": False,
        "evidence": round(got[2].evidence, 4),
        "matched": [r.to_json() for r in got[2].matched],
        "blocked_by": [],
        "placement": None,
        "why_not": "segment 1-1.5 s lasts 0.5 s, shorter than min_duration_s 2",
    }
    # With a gap that bridges the misses, the same keyframes make one placement.
    bridged = camp("presenter", target={"all": [FACE]}, gap_s=1.0, min_duration_s=2.0)
    idx = ConceptIndex.build([bridged], E, rules_root=Path("."))
    [p] = match(timeline, [bridged], idx, today=TODAY)
    got = explain_frames(timeline, [bridged], idx, today=TODAY)
    assert [d.placed for d in got] == [i % 2 == 0 for i in range(12)]
    assert {d.placement for d in got if d.placed} == {(p.start_s, p.end_s)}


@pytest.mark.parametrize(
    "campaign, frame, why_not",
    [
        pytest.param(
            {"flight": {"start": "2027-01-01", "end": "2027-02-01"}},
            {"logos": (("acme", 0.9),)},
            "not flying on 2026-12-01 (flight 2027-01-01..2027-02-01)",
            id="outside-flight",
        ),
        pytest.param(
            {"exclude": {"safety": ["nudity"], "logos": [{"brand": "rival"}]}},
            {"logos": (("acme", 0.9), ("rival", 0.9)), "safety": (("nudity", 0.9),)},
            "blocked by logo:rival, nudity",
            id="blocked",
        ),
        pytest.param(
            {"target": {"all": [ACME], "any": [SNOW, FACE]}},
            {"logos": (("acme", 0.9),)},
            "target not met: none of the 2 target.any clause(s) holds",
            id="no-any",
        ),
        pytest.param(
            {"target": {"all": [ACME, FACE]}},
            {"logos": (("acme", 0.9),)},
            "target not met: target.all[1] (face) does not hold",
            id="an-all-fails",
        ),
        pytest.param({}, {"logos": (("acme", 0.9),)}, None, id="placed"),
    ],
)
def test_why_not_names_the_reason(
    campaign: dict[str, Any], frame: dict[str, Any], why_not: str | None
) -> None:
    c = camp("c", **campaign)
    timeline = [ff(0.0, **frame), ff(0.5)]
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    d = explain_frames(timeline, [c], idx, today=TODAY)[0]
    assert d.why_not == why_not and d.placed is (why_not is None)
    assert bool(match(timeline, [c], idx, today=TODAY)) is d.placed


def test_placed_keyframes_are_exactly_those_inside_returned_placements() -> None:
    rng = random.Random(11)
    cs = [
        camp("short", min_duration_s=1.0, gap_s=0.5),
        camp("long", min_duration_s=3.0, gap_s=1.0, exclude={"safety": ["nudity"]}),
        camp("snow", target={"any": [SNOW, FACE]}, min_duration_s=1.5, gap_s=0.5),
        camp("gone", flight={"end": "2026-01-01"}),
    ]
    timeline = [
        ff(
            i * STEP,
            logos=(("acme", 0.9),) if rng.random() < 0.6 else (),
            emb={"snowy road": rng.choice([0.2, 0.35])},
            faces=((rng.choice([0.3, 0.6]), BOX),),
            safety=(("nudity", 0.9),) if rng.random() < 0.1 else (),
        )
        for i in range(40)
    ]
    idx = ConceptIndex.build(cs, E, rules_root=Path("."))
    placements = match(timeline, cs, idx, today=TODAY)
    assert {p.campaign for p in placements} >= {"short", "snow"}  # the test exercises something
    decisions = explain_frames(timeline, cs, idx, today=TODAY)
    for d in decisions:
        inside = [p for p in placements if p.campaign == d.campaign and p.start_s <= d.t < p.end_s]
        counts = d.target and not d.blocked
        assert d.placed is (counts and bool(inside)), d
        if d.placed:
            assert d.placement == (inside[0].start_s, inside[0].end_s) and d.why_not is None
        else:
            assert d.why_not and d.placement is None
