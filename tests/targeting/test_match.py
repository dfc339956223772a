"""match end to end (targeting.match): ranking, determinism, many campaigns, bad input."""

from __future__ import annotations

import random
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from targeting.match import match
from targeting.rules_schema import Campaign
from tests.targeting.fakes import FAKE_DIM
from tests.targeting.timelines import (
    BOX,
    SMALL,
    SNOW,
    STEP,
    TODAY,
    E,
    camp,
    check_reasons,
    ff,
    run,
)
from vision.errors import ModelError
from vision.types import FrameFacts


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
