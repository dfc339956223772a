"""Analyzer: every component runs once per batch, facts come back in frame order."""

from __future__ import annotations

import numpy as np
import pytest

from vision.analyze import Analyzer
from vision.types import ConceptScore, Detection, Frame, LogoMatch, SafetyFlag


class Counting:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed_images(self, images):
        self.calls.append(len(images))
        out = np.stack([np.full(4, float(img[0, 0, 0]), np.float32) for img in images])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def detect(self, images):
        return [[Detection("face", "face_female", 0.9, (0.1, 0.1, 0.2, 0.2))] for _ in images]

    def match_many(self, images):
        return [[LogoMatch("acme", 0.8, (0.5, 0.5, 0.6, 0.6))] for _ in images]

    def top_k(self, embeddings, k):
        return [[ConceptScore("1", "Automotive", float(e[0]))] for e in embeddings]

    def flags(self, embeddings, detections):
        assert embeddings is None or len(embeddings) == len(detections)
        return [(SafetyFlag("violence", 0.1, "clip"),) for _ in detections]


def frames(n: int) -> list[Frame]:
    return [Frame("m", i * 0.5, np.full((8, 8, 3), i + 1, np.uint8), index=i) for i in range(n)]


def test_batches_and_order() -> None:
    c = Counting()
    a = Analyzer(clip=c, detector=c, logos=c, concepts=c, safety=c, batch_size=4)
    facts = list(a.analyze(iter(frames(10))))
    assert c.calls == [4, 4, 2]
    assert [f.t for f in facts] == [i * 0.5 for i in range(10)]
    f = facts[3]
    assert f.embedding.shape == (4,) and f.faces[0].label == "face_female"
    assert f.logos[0].brand == "acme" and f.safety[0].category == "violence"
    assert f.concepts[0].name == "Automotive" and (f.width, f.height) == (8, 8)


def test_missing_components_contribute_nothing() -> None:
    facts = Analyzer().analyze_batch(frames(2))
    assert [(f.embedding, f.detections, f.logos, f.safety, f.concepts) for f in facts] == [
        (None, (), (), (), ())
    ] * 2


def test_streams_lazily() -> None:
    c = Counting()
    gen = Analyzer(clip=c, batch_size=2).analyze(iter(frames(100)))
    next(gen)
    assert c.calls == [2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size must be >= 1"), ({"concepts": Counting()}, "needs CLIP")],
)
def test_bad_config(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Analyzer(**kwargs)
