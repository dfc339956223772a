"""ConceptIndex: each distinct concept embedded once, one matrix product, IAB parent/child."""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from targeting.rules_schema import DEFAULT_EXCLUDE_THRESHOLD, Campaign
from tests.targeting.fakes import FAKE_DIM, FakeEmbedder, frame_embedding
from vision.errors import ModelError, RulesError
from vision.taxonomy import iab_by_id


def camp(cid: str, **kw: Any) -> Campaign:
    kw.setdefault("target", {"any": [{"logo": {"brand": "acme"}}]})
    return Campaign.model_validate({"id": cid, **kw})


def concept(prompt: str, threshold: float | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"prompt": prompt}
    if threshold is not None:
        c["threshold"] = threshold
    return {"concept": c}


# A tiny IAB vocabulary with known geometry: one orthonormal axis per category.
# Automotive > Auto Body Styles > Commercial Trucks; Travel and Attractions are other trees.
AUTO, AUTO_BODY, AUTO_TRUCKS, TRAVEL = "1", "2", "3", "653"
VOCAB = (AUTO, AUTO_BODY, AUTO_TRUCKS, TRAVEL, "150", "151")
IAB_MATRIX = np.eye(len(VOCAB), FAKE_DIM, dtype=np.float32)


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


def test_each_distinct_prompt_embedded_once_and_thresholds_per_column() -> None:
    e = FakeEmbedder()
    cs = [
        camp("a", target={"any": [concept("snow", 0.3), concept("beach")]}),
        camp("b", target={"all": [concept("snow", 0.3)], "any": [concept("snow", 0.2)]}),
        camp("c", exclude={"concepts": [{"prompt": "beach"}, {"prompt": "crash"}]}),
    ]
    idx = ConceptIndex.build(cs, e, rules_root=Path("."))
    assert e.calls == [("texts", 3)]  # snow, beach, crash: once each
    got = [(c.what, c.threshold) for c in idx.columns]
    assert got == [
        ("snow", 0.3),
        ("beach", 0.25),
        ("snow", 0.2),
        ("crash", DEFAULT_EXCLUDE_THRESHOLD),
    ]
    assert idx.matrix.shape == (4, FAKE_DIM) and idx.matrix.dtype == np.float32
    np.testing.assert_allclose(idx.matrix[0], idx.matrix[2])
    np.testing.assert_allclose(idx.thresholds, [0.3, 0.25, 0.2, 0.25])
    # campaign a's clauses and campaign b's `all` share the (snow, 0.3) column
    assert idx.plans[0].clause_signals == (0, 1)
    assert idx.plans[1].all_signals == (0,) and idx.plans[1].any_signals == (2,)
    assert idx.plans[2].exclude_signals[:2] == (1, 3) and idx.plans[2].exclude_concepts


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


def test_example_concept_is_the_renormalized_mean_of_its_images(
    tmp_path: Path, real_images: dict[str, Path]
) -> None:
    (tmp_path / "ex").mkdir()
    for name in ("bus", "zidane"):
        shutil.copy(real_images[name], tmp_path / "ex" / f"{name}.jpg")
    e = FakeEmbedder()
    cs = [
        camp("a", target={"any": [{"concept": {"examples": ["ex/bus.jpg", "ex/zidane.jpg"]}}]}),
        camp("b", target={"any": [{"concept": {"examples": ["ex/zidane.jpg", "ex/bus.jpg"]}}]}),
    ]
    idx = ConceptIndex.build(cs, e, rules_root=tmp_path)
    assert e.calls == [("images", 2)]
    assert len(idx.columns) == 1 and idx.columns[0].kind == "example"
    assert idx.columns[0].threshold == 0.8
    mean = e.image_vector(tmp_path / "ex/bus.jpg") + e.image_vector(tmp_path / "ex/zidane.jpg")
    np.testing.assert_allclose(idx.matrix[0], mean / np.linalg.norm(mean), atol=1e-6)


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


class WrongShape(FakeEmbedder):
    def embed_texts(self, texts: Any) -> np.ndarray:
        return np.ones((len(texts), self.dim + 1), dtype=np.float32)


class ZeroVectors(FakeEmbedder):
    def embed_texts(self, texts: Any) -> np.ndarray:
        return np.zeros((len(texts), self.dim), dtype=np.float32)


@pytest.mark.parametrize(
    "campaigns, embedder, kw, raises",
    [
        ([camp("a"), camp("a")], FakeEmbedder(), {}, pytest.raises(ValueError, match="twice")),
        (
            [camp("a", target={"any": [{"concept": {"examples": ["ex/none.jpg"]}}]})],
            FakeEmbedder(),
            {},
            pytest.raises(RulesError, match=r"example image 'ex/none.jpg' not found"),
        ),
        (
            [camp("a", exclude={"safety": ["nudity", "gambling"]})],
            FakeEmbedder(),
            {},
            pytest.raises(
                RulesError, match=r"exclude.safety\[1\]: unknown safety class 'gambling'"
            ),
        ),
        (
            [camp("a", target={"any": [{"iab": [AUTO]}]})],
            FakeEmbedder(),
            {},
            pytest.raises(ValueError, match="no IAB vocabulary was given"),
        ),
        (
            [camp("a", target={"any": [{"iab": ["999999"]}]})],
            FakeEmbedder(),
            {"iab_matrix": IAB_MATRIX, "iab_ids": VOCAB},
            pytest.raises(RulesError, match="IAB id '999999' is neither in the IAB vocabulary"),
        ),
        (
            [camp("a", target={"any": [{"iab": [AUTO]}]})],
            FakeEmbedder(),
            {"iab_matrix": IAB_MATRIX[:, :10], "iab_ids": VOCAB},
            pytest.raises(ValueError, match=r"iab_matrix must be \(6, 64\)"),
        ),
        (
            [camp("a", target={"any": [concept("snow")]})],
            WrongShape(),
            {},
            pytest.raises(ModelError, match=r"returned \(1, 65\) float32 for 1 prompts"),
        ),
        (
            [camp("a", target={"any": [concept("snow")]})],
            ZeroVectors(),
            {},
            pytest.raises(ModelError, match="non-finite or zero embedding"),
        ),
        ([camp("a", target={"any": [concept("snow")]})], FakeEmbedder(), {}, nullcontext()),
    ],
)
def test_build_errors_say_what_to_fix(
    campaigns: list[Campaign],
    embedder: FakeEmbedder,
    kw: dict[str, Any],
    raises: AbstractContextManager[Any],
    tmp_path: Path,
) -> None:
    with raises:
        idx = ConceptIndex.build(campaigns, embedder, rules_root=tmp_path, **kw)
        assert idx.n_signals == 1


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


def test_logo_and_face_rules_need_no_embedder(tmp_path) -> None:
    from targeting.rules_schema import Campaign

    logo = Campaign.model_validate({"id": "l", "target": {"any": [{"logo": {"brand": "acme"}}]}})
    face = Campaign.model_validate({"id": "f", "target": {"all": [{"face": {"min_count": 2}}]}})
    idx = ConceptIndex.build([logo, face], None, rules_root=tmp_path)
    assert idx.dim == 0 and idx.matrix.shape == (0, 0) and idx.model_id == "none"
    concept = Campaign.model_validate(
        {"id": "c", "target": {"any": [{"concept": {"prompt": "snow"}}]}}
    )
    with pytest.raises(ValueError, match="need an embedder"):
        ConceptIndex.build([logo, concept], None, rules_root=tmp_path)
