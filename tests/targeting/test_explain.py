"""FrameDecision per keyframe and campaign (targeting.explain)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from targeting.concept_index import ConceptIndex
from targeting.match import FrameDecision, explain_frames
from tests.targeting.timelines import (
    SNOW,
    E,
    camp,
    ff,
)


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
