"""Prompt-based brand safety in the lite space: ordinary real photos raise no flag, while a
frame the classifier is sure shows a rifle, a wine bottle, a tank or a syringe does.

Before ``neutral_texts`` the shared neutral prompts ("a photo", "a street") sat near zero in
the centred space, so the nearest unsafe prompt took the mass on every frame: coffee scored
alcohol 0.85, a cyclist violence 0.87, a bus disaster 0.82 (the demo blocked everything)."""

from __future__ import annotations

import pytest

from bench.semantic_set import SET, load
from vision.lite import LiteModel
from vision.lite.model import EVIDENCE_CLASSES, _imagenet_classes
from vision.safety import SafetyScorer
from vision.safety_classes import SAFETY_BY_NAME


@pytest.fixture(scope="module")
def scorer(lite: LiteModel) -> SafetyScorer:
    return SafetyScorer.for_model(lite)  # what the pipeline runs


def test_evidence_classes_are_imagenet_names_left_out_of_the_neutrals(lite: LiteModel) -> None:
    names = set(_imagenet_classes())
    assert names >= EVIDENCE_CLASSES
    assert not EVIDENCE_CLASSES & set(lite.neutral_texts)
    assert len(lite.neutral_texts) == len(set(lite.neutral_texts))


def test_ordinary_real_photos_raise_no_flag(lite: LiteModel, scorer: SafetyScorer) -> None:
    benign = [it for it in SET if it.name != "rocket"]  # a rocket is classified as a missile
    classes, _ = scorer.clip_scores(lite.embed_images([load(it) for it in benign]))
    flagged = {
        (it.name, c, round(float(v), 2))
        for it, row in zip(benign, classes, strict=True)
        for c, v in zip(scorer.clip_categories, row, strict=True)
        if v >= SAFETY_BY_NAME[c].threshold
    }
    assert not flagged


@pytest.mark.parametrize(
    ("imagenet", "category"),
    [
        ("assault rifle", "weapons"),
        ("beer bottle", "alcohol"),
        ("red wine", "alcohol"),
        ("tank", "military"),
        ("syringe", "drugs"),
        ("wreck", "disaster"),
    ],
)
def test_a_frame_sure_of_an_unsafe_class_is_flagged(
    lite: LiteModel, scorer: SafetyScorer, imagenet: str, category: str
) -> None:
    """The vector of a frame whose classifier puts all its mass on one class is that class
    name's (centred) embedding: the safety class it is evidence for must pass its threshold."""
    vector = lite._classes[_imagenet_classes().index(imagenet)].numpy()[None]
    classes, _ = scorer.clip_scores(vector)
    score = dict(zip(scorer.clip_categories, classes[0].tolist(), strict=True))
    assert score[category] >= SAFETY_BY_NAME[category].threshold, score
