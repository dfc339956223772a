"""Per-keyframe signals and decisions (targeting.signals): clauses, exclusions, chunking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from targeting.match import explain_frames, match
from tests.targeting.fakes import FAKE_DIM, frame_embedding
from tests.targeting.timelines import (
    ACME,
    BOX,
    FACE,
    SMALL,
    SNOW,
    STEP,
    TODAY,
    E,
    camp,
    check_reasons,
    ff,
    run,
    spans,
)
from vision.types import Box, FrameFacts


@pytest.mark.parametrize(
    "target, frame, expected",
    [
        ({"any": [SNOW, ACME]}, {"emb": {"snowy road": 0.35}}, True),
        ({"any": [SNOW, ACME]}, {"logos": (("acme", 0.9),)}, True),
        ({"any": [SNOW, ACME]}, {"emb": {"snowy road": 0.29}}, False),
        ({"all": [SNOW, ACME]}, {"emb": {"snowy road": 0.35}}, False),
        ({"all": [SNOW, ACME]}, {"emb": {"snowy road": 0.35}, "logos": (("acme", 0.9),)}, True),
        # all + any: every `all` and one `any`
        ({"all": [ACME], "any": [SNOW, FACE]}, {"logos": (("acme", 0.9),)}, False),
        (
            {"all": [ACME], "any": [SNOW, FACE]},
            {"logos": (("acme", 0.9),), "faces": ((0.9, BOX),)},
            True,
        ),
        ({"all": [FACE], "any": [SNOW, ACME]}, {"logos": (("acme", 0.9),)}, False),
        # another brand or a weak logo does not count
        ({"any": [ACME]}, {"logos": (("rival", 0.9),)}, False),
        ({"any": [ACME]}, {"logos": (("acme", 0.49),)}, False),
        (
            {"any": [{"logo": {"brand": "acme", "min_area": 0.05}}]},
            {"logos": (("acme", 0.9),)},
            True,
        ),
        (
            {"any": [{"logo": {"brand": "acme", "min_area": 0.05}}]},
            {"logos": (("acme", 0.9),), "logo_box": SMALL},
            False,
        ),
    ],
)
def test_any_versus_all(target: dict[str, Any], frame: dict[str, Any], expected: bool) -> None:
    c = camp("c", target=target)
    timeline = [ff(0.0, **frame)]
    got = run([c], timeline)
    assert [p.campaign for p in got] == (["c"] if expected else [])
    for p in got:
        check_reasons(p)
    [d] = explain_frames(timeline, [c], ConceptIndex.build([c], E, rules_root=Path(".")))
    assert d.target is expected and d.placed is expected and not d.blocking


def blocked_at_2(kind: str) -> dict[str, Any]:
    return {
        "safety": {"safety": (("nudity", 0.9),)},
        "safety-other-class": {"safety": (("violence", 0.95),)},
        "concept": {"emb": {"car crash": 0.4}},
        "logo": {"logos": (("acme", 0.9), ("rival", 0.8))},
        "below-threshold": {"safety": (("nudity", 0.3),)},
    }[kind]


@pytest.mark.parametrize(
    "kind, blocks, what",
    [
        ("safety", True, "nudity"),
        ("safety-other-class", False, ""),  # violence is not excluded by this campaign
        ("concept", True, "concept:car crash"),
        ("logo", True, "logo:rival"),
        ("below-threshold", False, ""),  # 0.3 < nudity's 0.45
    ],
)
def test_exclusions_block_and_split_segments(kind: str, blocks: bool, what: str) -> None:
    c = camp(
        "c",
        gap_s=2.0,
        exclude={
            "safety": ["nudity"],
            "concepts": [{"prompt": "car crash"}],
            "logos": [{"brand": "rival"}],
        },
    )
    timeline = [
        ff(i * STEP, **{"logos": (("acme", 0.9),), **(blocked_at_2(kind) if i == 4 else {})})
        for i in range(10)
    ]
    got = run([c], timeline)
    if blocks:
        assert spans(got) == [(0.0, 2.0), (2.5, 5.0)]  # t=2.0 never placed
    else:
        assert spans(got) == [(0.0, 5.0)]
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    d = explain_frames(timeline, [c], idx)[4]
    assert d.t == 2.0 and d.target and d.blocked is blocks and d.placed is not blocks
    if blocks:
        [r] = d.blocking
        assert (r.kind, r.what) == ("exclusion", what) and r.score >= 0.4 and r.t == 2.0
        assert (r.box is not None) == (kind in ("safety", "logo"))


def test_missing_embedding_blocks_campaigns_with_concept_exclusions() -> None:
    safe = camp("safe", exclude={"concepts": [{"prompt": "car crash"}]})
    plain = camp("plain")
    timeline = [ff(i * STEP, logos=(("acme", 0.9),), no_embedding=i == 2) for i in range(4)]
    got = run([safe, plain], timeline)
    assert spans(got, "safe") == [(0.0, 1.0), (1.5, 2.0)]
    assert spans(got, "plain") == [(0.0, 2.0)]
    idx = ConceptIndex.build([safe], E, rules_root=Path("."))
    d = explain_frames(timeline, [safe], idx)[2]
    assert d.blocked and d.blocking[0].what == "concept:unchecked"


@pytest.mark.parametrize(
    "face, faces, holds",
    [
        ({"min_count": 1}, [(0.9, BOX)], True),
        ({"min_count": 2}, [(0.9, BOX)], False),
        ({"min_count": 2}, [(0.9, BOX), (0.8, BOX)], True),
        ({"min_count": 1, "max_count": 1}, [(0.9, BOX), (0.8, BOX)], False),
        ({"min_count": 1, "max_count": 2}, [(0.9, BOX), (0.8, BOX)], True),
        ({"min_count": 1, "min_area": 0.05}, [(0.9, SMALL)], False),
        ({"min_count": 1, "min_area": 0.05}, [(0.9, SMALL), (0.9, BOX)], True),
        # small and weak faces do not count towards max_count either
        ({"min_count": 1, "max_count": 1, "min_area": 0.05}, [(0.9, SMALL), (0.9, BOX)], True),
        ({"min_count": 1}, [(0.3, BOX)], False),  # default min_score 0.4
        ({"min_count": 1, "min_score": 0.2}, [(0.3, BOX)], True),
        ({"min_count": 1}, [], False),
    ],
)
def test_face_count_area_and_score_limits(
    face: dict[str, Any], faces: list[tuple[float, Box]], holds: bool
) -> None:
    c = camp("c", target={"all": [{"face": face}]})
    got = run([c], [ff(0.0, faces=tuple(faces))])
    assert bool(got) is holds
    if holds:
        [r] = got[0].reasons
        counted = [s for s, b in faces if s >= face.get("min_score", 0.4)]
        assert r.kind == "face" and r.what.endswith(("face", "faces")) and r.score == max(counted)


def test_iab_clause_matches_a_child_category_on_screen() -> None:
    vocab = ("1", "2", "653")  # Automotive, Auto Body Styles (child), Travel
    mat = np.eye(3, FAKE_DIM, dtype=np.float32)
    cs = [
        camp("auto", target={"any": [{"iab": {"ids": ["1"], "top_k": 1}}]}),
        camp("body", target={"any": [{"iab": {"ids": ["2"], "top_k": 1}}]}),
        camp("travel", target={"any": [{"iab": {"ids": ["653"], "top_k": 1}}]}),
    ]
    idx = ConceptIndex.build(cs, E, rules_root=Path("."), iab_matrix=mat, iab_ids=vocab)
    body = frame_embedding([(mat[1], 0.6), (mat[2], 0.2)], seed=1)
    got = match([FrameFacts("v", 0.0, body)], cs, idx, today=TODAY)
    assert sorted(p.campaign for p in got) == ["auto", "body"]
    r = next(p for p in got if p.campaign == "auto").reasons[0]
    assert (r.kind, r.what, r.t, r.box) == ("iab", "2", 0.0, None)
    assert r.score == pytest.approx(0.6, abs=1e-5) and "Auto Body Styles" in r.detail


def test_chunked_evaluation_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long videos are evaluated MATCH_FRAME_CHUNK keyframes at a time; chunk edges are seamless."""
    import targeting.signals as tm

    cs = [
        camp("logo", gap_s=1.0, exclude={"safety": ["nudity"]}),
        camp("snow", target={"any": [SNOW]}, min_duration_s=1.0),
    ]
    timeline = [
        ff(
            i * STEP,
            emb={"snowy road": 0.35 if i % 7 else 0.1},
            logos=(("acme", 0.6 + 0.02 * i),) if i % 5 else (),
            safety=(("nudity", 0.9),) if i == 11 else (),
        )
        for i in range(17)
    ]
    idx = ConceptIndex.build(cs, E, rules_root=Path("."))
    whole = [p.to_json() for p in match(timeline, cs, idx, today=TODAY)]
    monkeypatch.setattr(tm, "MATCH_FRAME_CHUNK", 3)
    assert [p.to_json() for p in match(timeline, cs, idx, today=TODAY)] == whole
    got = sorted((p["campaign"], p["start_s"], p["end_s"]) for p in whole)
    assert got == [("logo", 0.5, 5.0), ("logo", 6.0, 8.5), ("snow", 0.5, 8.5)]


TYRES = {"text": {"any": ["acme", "winter tyres"], "min_score": 0.5}}


@pytest.mark.parametrize(
    "reads, what, edits",
    [
        ((("ACME winter sale", 0.9),), "acme", 0),
        ((("Fit W1NTER TYRE5 now", 0.8),), "winter tyres", 0),
        ((("winter tyrs", 0.8),), "winter tyres", 1),
        ((("acmeplex cinema", 0.9),), None, None),  # not a whole word
        ((("ACME", 0.4),), None, None),  # read below min_score
        ((("ACME", 0.4), ("acme motors", 0.7)), "acme", 0),  # the strong read counts
    ],
)
def test_text_clause_reads_phrases_in_ocr_text(
    reads: tuple[tuple[str, float], ...], what: str | None, edits: int | None
) -> None:
    c = camp("c", target={"any": [TYRES]})
    got = run([c], [ff(0.0, text=reads)])
    assert [p.campaign for p in got] == (["c"] if what else [])
    if what:
        check_reasons(got[0])
        [r] = got[0].reasons
        best = max(s for _, s in reads)
        assert (r.kind, r.what, r.score, r.box) == ("text", what, best, BOX)
        assert r.detail.startswith(f"{edits} OCR edit") and r.to_json()["text"] == what


def test_text_exclusion_blocks_and_names_the_phrase() -> None:
    c = camp("c", gap_s=2.0, exclude={"text": ["breaking news", "crash"]})
    timeline = [
        ff(i * STEP, logos=(("acme", 0.9),), text=(("BREAKING NEWS", 0.9),) if i == 2 else ())
        for i in range(6)
    ]
    assert spans(run([c], timeline)) == [(0.0, 1.0), (1.5, 3.0)]
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    d = explain_frames(timeline, [c], idx, today=TODAY)[2]
    [r] = d.blocking
    assert (r.kind, r.what, r.box) == ("exclusion", "text:breaking news", BOX)
    assert d.why_not == "blocked by text:breaking news"
