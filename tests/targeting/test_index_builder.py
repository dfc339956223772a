"""Compiling campaigns (targeting.index_builder): each concept embedded once, build errors."""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from targeting.rules_schema import DEFAULT_EXCLUDE_THRESHOLD, Campaign
from tests.targeting.builders import (
    AUTO,
    IAB_MATRIX,
    VOCAB,
    camp,
    concept,
)
from tests.targeting.fakes import FAKE_DIM, FakeEmbedder
from vision.errors import ModelError


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
            pytest.raises(
                ValueError,
                match=r"campaign 'a' target.any\[0\].concept: example image 'ex/none.jpg' not "
                r"found; ConceptIndex.build expects campaigns checked by "
                r"targeting.rules_loader.load_rules",
            ),
        ),
        (
            [camp("a", exclude={"safety": ["nudity", "gambling"]})],
            FakeEmbedder(),
            {},
            pytest.raises(
                ValueError, match=r"'a' exclude.safety\[1\]: unknown safety class 'gambling'; "
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
            pytest.raises(ValueError, match="IAB id '999999' is neither in the IAB vocabulary"),
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
