"""Attribute tags: the per-attribute decision from model scores, the vocabulary's prompts, and
tags stored with items and filtered inside the search.

No text-capable model ships with the test suite (the semantic model's text side is tested with
it), so the scoring is tested from similarity matrices whose right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.vision.catalog.vectors import vector_for, vectors_for
from vision.catalog import Catalog, CatalogFilter, CatalogItem
from vision.catalog.tags import DEFAULT_VOCABULARY, TagVocabulary, tags_from_scores

TAGS = ["colour:red", "colour:blue", "colour:green", "pattern:solid", "pattern:striped"]


def test_one_tag_per_attribute_only_when_clearly_best() -> None:
    scores = np.array(
        [
            [0.31, 0.22, 0.20, 0.25, 0.248],  # clearly red; solid vs striped too close to call
            [0.20, 0.21, 0.20, 0.20, 0.30],  # colour unclear; clearly striped
        ]
    )
    assert tags_from_scores(scores, TAGS) == [("colour:red",), ("pattern:striped",)]
    assert tags_from_scores(scores, TAGS, min_probability=0.0) == [
        ("colour:red", "pattern:solid"),
        ("colour:blue", "pattern:striped"),
    ]


@pytest.mark.parametrize("scores, tags, message", [
    (np.zeros((1, 2)), TAGS, r"scores must be \(N, 5\)"),
    (np.zeros((1, 1)), ["red"], "is not 'attribute:value'"),
])  # fmt: skip
def test_bad_score_inputs(scores: np.ndarray, tags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tags_from_scores(scores, tags)


def test_prompts_follow_the_category_vocabulary() -> None:
    vocab = TagVocabulary()
    dress = dict(vocab.prompts("dress"))
    assert dress["style:loose fit"] == "a photo of a loose fit dress"
    assert dress["material:denim"] == "a photo of a denim dress"
    unknown = dict(vocab.prompts("gadget"))
    assert set(unknown) == {f"{a}:{v}" for a, vs in DEFAULT_VOCABULARY[""].items() for v in vs}


def test_tags_are_stored_and_filterable(tmp_path: Path) -> None:
    ids = [f"d{i}" for i in range(12)]
    scores = np.zeros((12, len(TAGS)))
    scores[np.arange(12), np.arange(12) % 3] = 0.3  # red, blue, green in turn
    tags = tags_from_scores(scores, TAGS)
    with Catalog.open(tmp_path / "c", space_id="s", dim=16, create=True) as cat:
        cat.upsert(
            [CatalogItem(id=i, tags=t) for i, t in zip(ids, tags, strict=True)],
            vectors_for(ids, 16),
        )
        cat.save()
    with Catalog.open(tmp_path / "c", space_id="s", dim=16, readonly=True) as cat:
        assert cat.get("d1") == CatalogItem(id="d1", tags=("colour:blue",))
        hits = cat.search(
            vector_for("d0", 16), 12, filter=CatalogFilter(tags=frozenset({"colour:red"}))
        )[0]
        assert sorted(h.item.id for h in hits) == ["d0", "d3", "d6", "d9"]
