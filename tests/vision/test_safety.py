from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from tests.conftest import read_rgb
from tests.vision.test_clip_embedder import TINY_MODEL, register_tiny_model
from vision.clip_embedder import ClipEmbedder
from vision.errors import ModelError
from vision.safety import DEFAULT_CLIP_FLAG_FLOOR, SafetyScorer
from vision.safety_classes import NEUTRAL_PROMPTS, SAFETY_CLASSES, SafetyClass
from vision.types import Detection, SafetyFlag


class OrthogonalPrompts:
    """A fake text embedder: prompt i -> the i-th basis vector, so every cosine is 0 or 1 and
    the softmax has a closed form (exp(s) / (exp(s) + P - 1) on the matching prompt)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.model_id = "orthogonal-fake"
        self.meaningful = True
        self.index: dict[str, int] = {}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, t in enumerate(texts):
            out[row, self.index.setdefault(t, len(self.index))] = 1.0
        return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ClipEmbedder:
    register_tiny_model(tmp_path_factory.mktemp("clip-config"))
    return ClipEmbedder(TINY_MODEL, random_weights=True, device="cpu")


@pytest.fixture(scope="module")
def frames(tiny: ClipEmbedder, real_images) -> np.ndarray:
    return tiny.embed_images([read_rgb(real_images[n]) for n in ("bus", "zidane", "coffee")])


BREAST = Detection("safety", "FEMALE_BREAST_EXPOSED", 0.81, (0.1, 0.2, 0.3, 0.4))
BUTTOCKS = Detection("safety", "BUTTOCKS_EXPOSED", 0.55, (0.5, 0.5, 0.9, 1.0))
FACE = Detection("face", "FACE_FEMALE", 0.9, (0.4, 0.1, 0.6, 0.3))
COVERED = Detection("safety", "FEMALE_BREAST_COVERED", 0.7, (0.1, 0.2, 0.3, 0.4))


@pytest.mark.parametrize(
    "detections, expected",
    [
        ([], ()),
        ([FACE, COVERED], ()),  # faces and covered classes are not nudity
        (
            [FACE, BREAST],
            (
                SafetyFlag(
                    "nudity", 0.81, "detector", (0.1, 0.2, 0.3, 0.4), "FEMALE_BREAST_EXPOSED"
                ),
            ),
        ),
        (
            [BUTTOCKS, COVERED, BREAST],
            (
                SafetyFlag("nudity", 0.55, "detector", (0.5, 0.5, 0.9, 1.0), "BUTTOCKS_EXPOSED"),
                SafetyFlag(
                    "nudity", 0.81, "detector", (0.1, 0.2, 0.3, 0.4), "FEMALE_BREAST_EXPOSED"
                ),
            ),
        ),
    ],
)
def test_detector_flags(detections, expected) -> None:
    scorer = SafetyScorer(None)  # no CLIP: detector classes only
    assert scorer.categories == ("nudity",)
    assert scorer.flags(None, [detections]) == [expected]


def test_clip_scores_are_probabilities_summing_to_one_with_neutral(tiny, frames) -> None:
    scorer = SafetyScorer(tiny, floor=0.0)
    clip_names = tuple(c.name for c in SAFETY_CLASSES if c.source == "clip")
    assert scorer.clip_categories == clip_names
    assert scorer.categories == ("nudity", *clip_names)
    assert not scorer.meaningful  # random weights: mechanics only
    classes, neutral = scorer.clip_scores(frames)
    assert classes.shape == (3, len(clip_names)) and neutral.shape == (3,)
    assert classes.dtype == neutral.dtype == np.float32
    assert ((classes >= 0) & (classes <= 1)).all() and ((neutral >= 0) & (neutral <= 1)).all()
    np.testing.assert_allclose(classes.sum(axis=1) + neutral, 1.0, atol=1e-5)

    flags = scorer.flags(frames, [[BREAST], [], []])
    assert flags[0][0].source == "detector"
    for i, frame_flags in enumerate(flags):
        clip_flags = [f for f in frame_flags if f.source == "clip"]
        if i == 0:  # a detector flag: the second opinion comes last
            opinion = clip_flags.pop()
            assert (opinion.category, opinion.label, opinion.box) == (
                "not_a_person",
                "not_a_person",
                None,
            )
            assert opinion.score == pytest.approx(float(scorer.not_a_person(frames)[0]))
        assert [f.category for f in clip_flags] == list(clip_names)  # floor 0: every class
        assert all(f.box is None and f.label == f.category for f in clip_flags)
        np.testing.assert_allclose([f.score for f in clip_flags], classes[i], atol=1e-6)


def test_default_floor_drops_only_low_scores(tiny, frames) -> None:
    scorer = SafetyScorer(tiny)
    classes, _ = scorer.clip_scores(frames)
    for i, frame_flags in enumerate(scorer.flags(frames, [[]] * 3)):
        want = {
            name
            for name, s in zip(scorer.clip_categories, classes[i], strict=True)
            if s >= DEFAULT_CLIP_FLAG_FLOOR
        }
        assert {f.category for f in frame_flags} == want


def test_softmax_closed_form_on_orthogonal_prompts() -> None:
    fake = OrthogonalPrompts()
    classes = (
        SafetyClass("weapons", "Arms", "clip", 0.6, prompts=("a gun", "a rifle")),
        SafetyClass("gore", "Death", "clip", 0.6, prompts=("a dead body",)),
    )
    neutral = ("a photo", "a street")
    scorer = SafetyScorer(fake, classes, neutral_prompts=neutral, floor=0.0, logit_scale=10.0)
    assert scorer.prompts == ("a gun", "a rifle", "a dead body", "a photo", "a street")
    p = 5
    frame = np.zeros((1, fake.dim), np.float32)
    frame[0, fake.index["a rifle"]] = 1.0  # exactly the "a rifle" prompt
    mass, rest = scorer.clip_scores(frame)
    hit = math.exp(10.0) / (math.exp(10.0) + p - 1)
    miss = 1.0 / (math.exp(10.0) + p - 1)
    np.testing.assert_allclose(mass[0], [hit + miss, miss], rtol=1e-5)
    np.testing.assert_allclose(rest, [2 * miss], rtol=1e-5)
    between = np.zeros((1, fake.dim), np.float32)
    between[0, [fake.index["a gun"], fake.index["a photo"]]] = math.sqrt(0.5)
    mass, rest = scorer.clip_scores(between)
    assert mass[0, 0] == pytest.approx(rest[0], rel=1e-5)  # equal pull, equal mass


def test_default_scale_is_clip_100() -> None:
    fake = OrthogonalPrompts()
    classes = (SafetyClass("gore", "Death", "clip", 0.6, prompts=("a dead body",)),)
    scorer = SafetyScorer(fake, classes, neutral_prompts=("a photo",))
    frame = np.zeros((1, fake.dim), np.float32)
    frame[0, [fake.index["a dead body"], fake.index["a photo"]]] = (1.0, 0.99)
    frame /= np.linalg.norm(frame)
    gap = 100.0 * float(frame[0, 0] - frame[0, 1])  # logit gap at CLIP's scale: ~0.71
    (flag,) = scorer.flags(frame, [[]])[0]
    assert (flag.category, flag.source, flag.box, flag.label) == ("gore", "clip", None, "gore")
    assert flag.score == pytest.approx(1.0 / (1.0 + math.exp(-gap)), rel=1e-5)
    assert 0.66 < flag.score < 0.68


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"floor": 1.5}, r"floor must be in 0\.\.1"),
        ({"logit_scale": 0.0}, r"logit_scale must be in \(0, 1000\]"),
        ({"neutral_prompts": ()}, "neutral_prompts must not be empty"),
        ({"neutral_prompts": ("a gun",)}, r"repeated: \['a gun'\]"),
        (
            {"classes": (SafetyClass("x", "X", "detector", 0.5),)},
            "detector safety class 'x' lists no detector labels",
        ),
        (
            {"classes": (SafetyClass("x", "X", "clip", 0.5),)},
            "CLIP safety class 'x' lists no prompts",
        ),
        (
            {"classes": SAFETY_CLASSES + (SAFETY_CLASSES[0],)},
            "safety class names must be unique",
        ),
    ],
)
def test_scorer_validation(kwargs, message) -> None:
    kwargs.setdefault("classes", (SafetyClass("weapons", "Arms", "clip", 0.6, prompts=("a gun",)),))
    with pytest.raises(ValueError, match=message):
        SafetyScorer(OrthogonalPrompts(), **kwargs)


@pytest.mark.parametrize(
    "embeddings, detections, error, message",
    [
        (np.zeros((2, 32), np.float32), [[]], ValueError, "embeddings has 2 rows but detections covers 1"),
        (np.zeros((1, 16), np.float32), [[]], ModelError, r"must be \(N, 32\), got \(1, 16\)"),
    ],
)  # fmt: skip
def test_flags_input_errors(tiny, embeddings, detections, error, message) -> None:
    with pytest.raises(error, match=message):
        SafetyScorer(tiny).flags(embeddings, detections)


def test_no_embeddings_gives_detector_flags_only(tiny) -> None:
    scorer = SafetyScorer(tiny, floor=0.0)
    assert scorer.flags(None, [[BREAST], [FACE]]) == [
        (SafetyFlag("nudity", 0.81, "detector", BREAST.box, "FEMALE_BREAST_EXPOSED"),),
        (),
    ]


def test_prompt_matrix_is_computed_once(tiny, frames) -> None:
    class Counting:
        def __init__(self) -> None:
            self.calls = 0
            self.dim = tiny.dim
            self.model_id = tiny.model_id
            self.meaningful = True

        def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
            self.calls += 1
            return tiny.embed_texts(texts)

    counting = Counting()
    scorer = SafetyScorer(counting)
    n_prompts = sum(len(c.prompts) for c in SAFETY_CLASSES) + len(NEUTRAL_PROMPTS)
    assert len(scorer.prompts) == n_prompts and counting.calls == 1
    scorer.flags(frames, [[]] * 3)
    scorer.flags(frames[:1], [[]])
    assert counting.calls == 1
