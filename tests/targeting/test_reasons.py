"""Reasons and scores of placements (targeting.reasons)."""

from __future__ import annotations

import numpy as np
import pytest

import targeting.reasons as reasons_module
from targeting.reasons import distinct_rows, expand
from tests.targeting.timelines import (
    ACME,
    BOX,
    FACE,
    SMALL,
    SNOW,
    camp,
    check_reasons,
    ff,
    run,
)


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
        "detail": "score >= 0.5, by matcher",
    }


def test_expand_lists_the_ranges_back_to_back() -> None:
    owner, at = expand(np.array([10, 3, 7]), np.array([2, 0, 3]))
    assert owner.tolist() == [0, 0, 2, 2, 2] and at.tolist() == [10, 11, 7, 8, 9]


@pytest.mark.parametrize("multipliers", ["random", "colliding"])
def test_distinct_rows_are_exact_even_when_hashes_collide(
    multipliers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if multipliers == "colliding":  # every row with the same sum shares a hash
        monkeypatch.setattr(reasons_module, "ROW_HASH", np.ones(64, dtype=np.int64))
    rows = np.array([[0, 1, -1], [1, 0, -1], [0, 1, -1], [2, -1, -1], [1, 0, -1]], np.int64)
    pick, of_row = distinct_rows(rows)
    assert sorted(map(tuple, rows[pick].tolist())) == [(0, 1, -1), (1, 0, -1), (2, -1, -1)]
    assert np.array_equal(rows[pick][of_row], rows)
