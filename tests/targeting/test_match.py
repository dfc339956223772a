"""match / explain_frames on hand-built FrameFacts timelines (no models)."""

from __future__ import annotations

import random
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from targeting.match import (
    MAX_REASONS_PER_CLAUSE,
    FrameDecision,
    estimate_step,
    explain_frames,
    match,
)
from targeting.rules_schema import Campaign
from targeting.types import Placement
from tests.targeting.fakes import FAKE_DIM, FakeEmbedder, frame_embedding
from vision.errors import ModelError
from vision.types import Box, Detection, FrameFacts, LogoMatch, SafetyFlag

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
        assert r.kind in ("concept", "example", "iab", "logo", "face"), r
        assert p.start_s <= r.t <= p.end_s, (r, p)
        assert np.isfinite(r.score)
        assert (r.box is not None) == (r.kind in ("logo", "face")), r
        per_clause[(r.kind, r.detail)] = per_clause.get((r.kind, r.detail), 0) + 1
    assert max(per_clause.values()) <= MAX_REASONS_PER_CLAUSE
    assert 0.0 <= p.score <= 1.0 and p.rank >= 1


SNOW = {"concept": {"prompt": "snowy road", "threshold": 0.3}}
ACME = {"logo": {"brand": "acme"}}
FACE = {"face": {"min_count": 1}}


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
    "gap_s, expected",
    [
        (1.0, [(0.0, 1.0), (2.0, 3.0)]),
        (1.5, [(0.0, 3.0)]),  # the 1.5 s hole is bridged
        (0.0, [(0.0, 0.5), (0.5, 1.0), (2.0, 2.5), (2.5, 3.0)]),
    ],
)
def test_gap_merge(gap_s: float, expected: list[tuple[float, float]]) -> None:
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    hit = {0.0, 0.5, 2.0, 2.5}
    timeline = [ff(t, logos=(("acme", 0.9),) if t in hit else ()) for t in times]
    assert spans(run([camp("c", gap_s=gap_s)], timeline)) == expected


@pytest.mark.parametrize(
    "min_duration_s, expected",
    [
        (0.0, [(0.0, 0.5), (2.0, 4.0)]),
        (0.5, [(0.0, 0.5), (2.0, 4.0)]),
        (1.0, [(2.0, 4.0)]),
        (2.0, [(2.0, 4.0)]),
        (2.01, []),
    ],
)
def test_min_duration_drops_short_segments(
    min_duration_s: float, expected: list[tuple[float, float]]
) -> None:
    hit = {0, 4, 5, 6, 7}  # 0.0 alone, then 2.0..3.5 (+ one step)
    timeline = [ff(i * STEP, logos=(("acme", 0.9),) if i in hit else ()) for i in range(9)]
    got = run([camp("c", min_duration_s=min_duration_s)], timeline)
    assert spans(got) == expected


def test_segment_end_stops_at_the_next_keyframe_after_a_cut() -> None:
    timeline = [ff(0.0, logos=(("acme", 0.9),)), ff(0.5, logos=(("acme", 0.9),)), ff(0.7), ff(1.0)]
    assert estimate_step(np.array([f.t for f in timeline])) == pytest.approx(0.3)
    assert spans(run([camp("c")], timeline)) == [(0.0, 0.7)]


def test_single_image_is_placed_whatever_min_duration() -> None:
    c = camp("c", min_duration_s=5.0)
    got = run([c], [ff(0.0, logos=(("acme", 0.9),), media="pin.jpg")])
    assert [(p.media, p.start_s, p.end_s, p.rank) for p in got] == [("pin.jpg", 0.0, 0.0, 1)]
    [r] = got[0].reasons
    assert (r.kind, r.what, r.t, r.box) == ("logo", "acme", 0.0, BOX)
    assert r.score == pytest.approx(0.9)


def test_empty_timeline_and_no_flying_campaign_give_nothing() -> None:
    c = camp("c", flight={"end": "2020-01-01"})
    assert run([camp("c")], []) == []
    assert run([c], [ff(0.0, logos=(("acme", 0.9),))]) == []
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    assert explain_frames([], [c], idx) == []


@pytest.mark.parametrize(
    "flight, placed",
    [
        (None, True),
        ({"start": "2026-12-02"}, False),  # starts tomorrow
        ({"start": "2026-12-01"}, True),  # first day (inclusive)
        ({"end": "2026-12-01"}, True),  # last day (inclusive)
        ({"end": "2026-11-30"}, False),  # ended yesterday
        ({"start": "2026-11-01", "end": "2027-02-28"}, True),
        ({"start": "2025-11-01", "end": "2026-02-28"}, False),
    ],
)
def test_flight_dates(flight: dict[str, str] | None, placed: bool) -> None:
    c = camp("c", flight=flight)
    got = run([c], [ff(0.0, logos=(("acme", 0.9),))])
    assert bool(got) is placed


def test_rank_by_score_times_bid_ties_by_campaign_id() -> None:
    cs = [
        camp("b-two", bid_cpm=2.0),
        camp("a-two", bid_cpm=2.0),
        camp("one", bid_cpm=1.0),
        camp("rich", bid_cpm=3.0, target={"any": [{"logo": {"brand": "acme", "min_score": 0.85}}]}),
    ]
    timeline = [ff(i * STEP, logos=(("acme", 0.9),)) for i in range(4)]
    got = run(cs, timeline)
    # score of a plain acme clause: 0.5 + 0.5 * (0.9 - 0.5) / 0.5 = 0.9
    # rich: 0.5 + 0.5 * (0.9 - 0.85) / 0.15 = 0.667 -> 0.667 * 3 = 2.0 > 0.9 * 2 = 1.8
    assert [(p.campaign, p.rank) for p in got] == [
        ("rich", 1),
        ("a-two", 2),
        ("b-two", 3),
        ("one", 4),
    ]
    assert got[1].score == pytest.approx(0.9) and got[0].score == pytest.approx(2 / 3, abs=1e-5)
    for p in got:
        check_reasons(p)


@pytest.mark.parametrize("low, high", [(0.6, 0.7), (0.7, 0.95), (0.51, 0.52)])
def test_score_is_monotone_in_evidence(low: float, high: float) -> None:
    c = camp("c")
    weak = run([c], [ff(0.0, logos=(("acme", low),))])[0].score
    strong = run([c], [ff(0.0, logos=(("acme", high),))])[0].score
    assert 0.5 <= weak < strong <= 1.0


def test_reasons_name_the_strongest_keyframes_of_each_clause() -> None:
    c = camp("c", target={"any": [SNOW, ACME, FACE]}, min_duration_s=1.0)
    timeline = [
        ff(0.0, emb={"snowy road": 0.31}, logos=(("acme", 0.6),)),
        ff(0.5, emb={"snowy road": 0.38}, logos=(("acme", 0.95),), faces=((0.8, SMALL),)),
        ff(1.0, emb={"snowy road": 0.33}, logos=(("acme", 0.7),)),
        ff(1.5, logos=(("acme", 0.99),)),
    ]
    [p] = run([c], timeline)
    check_reasons(p)
    got = [(r.kind, r.what, r.t, round(r.score, 3), r.box) for r in p.reasons]
    assert got == [
        ("concept", "snowy road", 0.5, 0.38, None),
        ("concept", "snowy road", 1.0, 0.33, None),
        ("logo", "acme", 1.5, 0.99, BOX),
        ("logo", "acme", 0.5, 0.95, BOX),
        ("face", "1 face", 0.5, 0.8, SMALL),
    ]
    # score: per keyframe the strongest clause evidence, averaged over the 4 keyframes
    concept = [0.5 + 0.5 * min(1, (s - 0.3) / 0.1) for s in (0.31, 0.38, 0.33)]  # span 0.1
    logo = [0.5 + 0.5 * (s - 0.5) / 0.5 for s in (0.6, 0.95, 0.7, 0.99)]
    face = 0.5 + 0.5 * (0.8 - 0.4) / 0.6
    ev = [
        max(concept[0], logo[0]),
        max(concept[1], logo[1], face),
        max(concept[2], logo[2]),
        logo[3],
    ]
    assert p.score == pytest.approx(float(np.mean(ev)), abs=1e-4)
    js = p.to_json()
    assert js["reasons"][2] == {  # type: ignore[index]
        "kind": "logo",
        "brand": "acme",
        "score": 0.99,
        "t": 1.5,
        "box": list(BOX),
        "detail": "score >= 0.5",
    }


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


def test_placements_are_deterministic_whatever_the_input_order() -> None:
    cs = [camp(f"c{i:02d}", bid_cpm=1 + i % 3) for i in range(12)]
    cs += [camp("snow", target={"any": [SNOW]}, gap_s=0.0)]
    timeline = [
        ff(i * STEP, logos=(("acme", 0.6 + 0.03 * i),) if i % 4 else (), emb={"snowy road": 0.35})
        for i in range(12)
    ]
    idx = ConceptIndex.build(cs, E, rules_root=Path("."))
    first = match(timeline, cs, idx, today=TODAY)
    rng = random.Random(3)
    for _ in range(3):
        tl, cc = timeline[:], cs[:]
        rng.shuffle(tl)
        rng.shuffle(cc)
        again = match(tl, cc, idx, today=TODAY)
        assert [p.to_json() for p in again] == [p.to_json() for p in first]
    assert [p.rank for p in first] == list(range(1, len(first) + 1))
    keys = [(-p.score * p.bid_cpm, p.campaign, p.start_s) for p in first]
    assert keys == sorted(keys)


def test_many_campaigns_at_once_equal_each_campaign_alone() -> None:
    """The vectorized layout (shared columns, reduceat runs) must not mix campaigns up."""
    rng = random.Random(7)
    prompts = ["snow", "beach", "city", "forest"]
    pool: list[dict[str, Any]] = [
        {"concept": {"prompt": p, "threshold": th}} for p in prompts for th in (0.2, 0.3)
    ]
    pool += [{"logo": {"brand": b, "min_score": s}} for b in ("acme", "rival") for s in (0.5, 0.8)]
    pool += [{"face": {"min_count": n, "min_area": a}} for n in (1, 2) for a in (0.0, 0.05)]
    cs = []
    for i in range(60):
        target: dict[str, Any] = {}
        if rng.random() < 0.5:
            target["all"] = rng.sample(pool, rng.randint(1, 2))
        if rng.random() < 0.7 or not target:
            target["any"] = rng.sample(pool, rng.randint(1, 3))
        exclude = {"safety": ["nudity"]} if i % 5 == 0 else {}
        if i % 7 == 0:
            exclude["logos"] = [{"brand": "rival"}]
        cs.append(camp(f"c{i:02d}", target=target, exclude=exclude, gap_s=rng.choice([0.5, 1.0])))
    timeline = []
    for i in range(24):
        emb = {p: rng.choice([0.1, 0.25, 0.35]) for p in rng.sample(prompts, 2)}
        logos = tuple((b, rng.choice([0.6, 0.9])) for b in ("acme", "rival") if rng.random() < 0.4)
        faces = tuple((0.9, rng.choice([BOX, SMALL])) for _ in range(rng.randint(0, 2)))
        safety = (("nudity", 0.9),) if rng.random() < 0.1 else ()
        timeline.append(ff(i * STEP, emb=emb, logos=logos, faces=faces, safety=safety))
    together = run(cs, timeline)
    assert len({p.campaign for p in together}) > 10  # the test exercises something
    alone = [p for c in cs for p in run([c], timeline)]
    key = lambda p: (p.campaign, p.start_s)  # noqa: E731
    strip = lambda p: {k: v for k, v in p.to_json().items() if k != "rank"}  # noqa: E731
    assert [strip(p) for p in sorted(together, key=key)] == [
        strip(p) for p in sorted(alone, key=key)
    ]


@pytest.mark.parametrize(
    "timeline, campaigns, raises",
    [
        (
            [ff(0.0, media="a"), ff(0.5, media="b")],
            [camp("c")],
            pytest.raises(ValueError, match="timeline mixes media"),
        ),
        (
            [FrameFacts("v", 0.0, np.ones(FAKE_DIM + 1, dtype=np.float32))],
            [camp("c")],
            pytest.raises(ModelError, match="analyze media and embed rules with the same model"),
        ),
        ([ff(0.0)], [camp("other")], pytest.raises(ValueError, match="not in the concept index")),
        ([ff(0.0)], [camp("c")], nullcontext()),
    ],
)
def test_bad_input(
    timeline: list[FrameFacts], campaigns: list[Campaign], raises: AbstractContextManager[Any]
) -> None:
    idx = ConceptIndex.build([camp("c")], E, rules_root=Path("."))
    with raises:
        assert match(timeline, campaigns, idx, today=TODAY) == []


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


def test_chunked_evaluation_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long videos are evaluated MATCH_FRAME_CHUNK keyframes at a time; chunk edges are seamless."""
    import targeting.match as tm

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
