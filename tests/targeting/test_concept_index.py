"""ConceptIndex: each distinct concept embedded once, one matrix product, IAB parent/child."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from tests.targeting.builders import (
    AUTO,
    AUTO_BODY,
    AUTO_TRUCKS,
    IAB_MATRIX,
    TRAVEL,
    VOCAB,
    camp,
    concept,
)
from tests.targeting.fakes import FAKE_DIM, FakeEmbedder, frame_embedding
from vision.errors import ModelError
from vision.taxonomy import iab_by_id


def iab_frame(weights: dict[str, float]) -> np.ndarray:
    """A unit embedding whose IAB cosines follow ``weights`` (other categories score 0)."""
    v = np.zeros(FAKE_DIM, dtype=np.float32)
    for cid, w in weights.items():
        v[VOCAB.index(cid)] = w
    v[-1] = 0.1  # some non-IAB content
    return v / np.linalg.norm(v)


def test_taxonomy_facts_used_by_these_tests() -> None:
    tax = iab_by_id()
    assert tax[AUTO_BODY].parent == AUTO and tax[AUTO_TRUCKS].parent == AUTO_BODY
    assert tax[AUTO].parent is None and tax[TRAVEL].parent is None


def test_scores_are_one_product_and_hits_compare_with_thresholds() -> None:
    e = FakeEmbedder()
    cs = [camp("a", target={"any": [concept("snow", 0.3), concept("beach", 0.2)]})]
    idx = ConceptIndex.build(cs, e, rules_root=Path("."))
    emb = np.stack(
        [
            frame_embedding({"snow": 0.31, "beach": 0.19}, e),
            frame_embedding({"snow": 0.29, "beach": 0.21}, e),
        ]
    )
    s = idx.scores(emb)
    assert s.shape == (2, 2)
    np.testing.assert_allclose(s, [[0.31, 0.19], [0.29, 0.21]], atol=1e-5)
    assert idx.hits(emb).tolist() == [[True, False], [False, True]]


@pytest.mark.parametrize(
    "weights, clause, expected",
    [
        # a parent id matches its child at the top of the frame
        ({AUTO_BODY: 0.9, TRAVEL: 0.3}, {"ids": [AUTO]}, True),
        # ... and a grandchild
        ({AUTO_TRUCKS: 0.9, TRAVEL: 0.3}, {"ids": [AUTO], "top_k": 1}, True),
        # a child id does not match its parent (nor a sibling tree)
        ({AUTO: 0.9, TRAVEL: 0.3}, {"ids": [AUTO_BODY], "top_k": 2}, False),
        ({AUTO_TRUCKS: 0.9, TRAVEL: 0.3}, {"ids": ["150"], "top_k": 2}, False),
        ({AUTO_BODY: 0.9}, {"ids": [AUTO_BODY]}, True),
        # rank 3 of top 3 holds, rank 4 does not
        ({"150": 0.9, "151": 0.8, TRAVEL: 0.7, AUTO: 0.6}, {"ids": [TRAVEL]}, True),
        ({"150": 0.9, "151": 0.8, TRAVEL: 0.7, AUTO: 0.6}, {"ids": [AUTO]}, False),
        ({"150": 0.9, "151": 0.8, TRAVEL: 0.7, AUTO: 0.6}, {"ids": [AUTO], "top_k": 4}, True),
        # threshold gates on the covering category's cosine
        ({AUTO_BODY: 0.9, TRAVEL: 0.3}, {"ids": [TRAVEL], "threshold": 0.5}, False),
        ({AUTO_BODY: 0.9, TRAVEL: 0.3}, {"ids": [TRAVEL], "threshold": 0.2}, True),
        # any listed id is enough
        ({TRAVEL: 0.9}, {"ids": [AUTO, TRAVEL], "top_k": 1}, True),
    ],
)
def test_iab_clause_parent_child_rank_and_threshold(
    weights: dict[str, float], clause: dict[str, Any], expected: bool
) -> None:
    cs = [camp("a", target={"any": [{"iab": clause}]})]
    idx = ConceptIndex.build(
        cs, FakeEmbedder(), rules_root=Path("."), iab_matrix=IAB_MATRIX, iab_ids=VOCAB
    )
    got = idx.iab_hits(iab_frame(weights)[None, :])
    assert got.hit.tolist() == [[expected]]
    if expected:
        cat: str | None = VOCAB[int(got.category[0, 0])]
        chain = []
        while cat is not None:
            chain.append(cat)
            cat = iab_by_id()[cat].parent
        assert set(chain) & set(clause["ids"])  # the covering category is listed or below one
        assert 0 <= got.rank[0, 0] < clause.get("top_k", 3)
    else:
        assert got.category[0, 0] == -1


def test_iab_top_is_best_first() -> None:
    cs = [camp("a", target={"any": [{"iab": {"ids": [AUTO], "top_k": 2}}]})]
    idx = ConceptIndex.build(
        cs, FakeEmbedder(), rules_root=Path("."), iab_matrix=IAB_MATRIX, iab_ids=VOCAB
    )
    rows, scores = idx.iab_top(iab_frame({TRAVEL: 0.5, AUTO: 0.9, "150": 0.2})[None, :])
    assert [VOCAB[r] for r in rows[0]] == [AUTO, TRAVEL]
    assert scores[0, 0] > scores[0, 1]


def test_stale_or_unknown_campaign_and_wrong_dim_are_refused() -> None:
    a = camp("a", target={"any": [concept("snow")]})
    idx = ConceptIndex.build([a], FakeEmbedder(), rules_root=Path("."))
    assert idx.position(a) == 0
    assert idx.position(camp("a", target={"any": [concept("snow")]})) == 0  # equal, rebuilt
    with pytest.raises(ValueError, match="changed since the concept index was built"):
        idx.position(camp("a", target={"any": [concept("sand")]}))
    with pytest.raises(ValueError, match="'b' is not in the concept index"):
        idx.position(camp("b"))
    with pytest.raises(ModelError, match=r"\(2, 32\) but the concept index was built with"):
        idx.scores(np.zeros((2, 32), dtype=np.float32))


def test_campaign_table_flights_agree_with_active_on() -> None:
    """The vectorized flight check (``CampaignTable.flies_on``) is ``Campaign.active_on``."""
    flights: list[dict[str, str] | None] = [
        None,
        {"start": "2026-12-01"},
        {"end": "2026-12-01"},
        {"start": "2026-11-01", "end": "2026-11-30"},
        {"start": "2026-12-02", "end": "2027-01-31"},
    ]
    cs = [camp(f"f{i}", flight=f) if f else camp(f"f{i}") for i, f in enumerate(flights)]
    idx = ConceptIndex.build(cs, None, rules_root=Path("."))
    for day in ("2026-10-31", "2026-11-30", "2026-12-01", "2026-12-02", "2027-02-01"):
        d = date.fromisoformat(day)
        assert idx.campaign_table.flies_on(d).tolist() == [c.active_on(d) for c in cs], day


def test_positions_of_checks_campaigns_in_any_order() -> None:
    cs = [camp("a"), camp("b"), camp("c")]
    idx = ConceptIndex.build(cs, None, rules_root=Path("."))
    assert idx.positions_of(cs).tolist() == [0, 1, 2]  # the index's own campaigns
    assert idx.positions_of([cs[2], cs[0]]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="changed since the concept index was built"):
        idx.positions_of([cs[0], camp("b", bid_cpm=9.0), cs[2]])
