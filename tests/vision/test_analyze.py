"""Analyzer: every component runs once per batch, facts come back in frame order."""

from __future__ import annotations

import numpy as np
import pytest

from vision.analyze import Analyzer
from vision.types import ConceptScore, Detection, Frame, LogoMatch, SafetyFlag, TextRead


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
    a = Analyzer(semantic=c, detector=c, logos=c, concepts=c, safety=c, batch_size=4)
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
    gen = Analyzer(semantic=c, batch_size=2).analyze(iter(frames(100)))
    next(gen)
    assert c.calls == [2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"concepts": Counting()}, "needs image embeddings"),
    ],
)
def test_bad_config(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Analyzer(**kwargs)


class Reading:
    """Records which frames OCR was asked to read (by their first pixel) and reads that."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def read_many(self, images):
        ids = [int(img[0, 0, 0]) for img in images]
        self.calls.append(ids)
        return [[TextRead(f"frame {i}", 0.9, (0.1, 0.1, 0.5, 0.2))] for i in ids]


def video(reasons: str, step: float = 0.5, media: str = "m") -> list[Frame]:
    """Frames ``step`` s apart; ``reasons`` holds one letter per frame: i(nterval) or c(ut)."""
    kind = {"i": "interval", "c": "cut"}
    return [
        Frame(media, k * step, np.full((8, 8, 3), k + 1, np.uint8), index=k, reason=kind[r])
        for k, r in enumerate(reasons)
    ]


def test_ocr_off_leaves_text_empty_and_facts_unchanged() -> None:
    facts = Analyzer().analyze_batch(frames(3))
    assert [f.text for f in facts] == [()] * 3


def test_ocr_reads_once_per_interval_and_on_cuts_across_batches() -> None:
    r = Reading()
    a = Analyzer(ocr=r, ocr_interval_s=1.0, batch_size=3)
    facts = list(a.analyze(iter(video("iiiiciii"))))  # t = 0, 0.5, ..., 3.5; a cut at 2.0
    assert r.calls == [[1, 3], [5], [7]]  # t=0, 1.0 | 2.0 (cut) | 3.0; one call per batch
    # Keyframes between reads carry the last read of their shot.
    assert [f.text[0].text for f in facts] == [
        "frame 1", "frame 1", "frame 3", "frame 3", "frame 5", "frame 5", "frame 7", "frame 7"
    ]  # fmt: skip


def test_ocr_memory_makes_mixed_batches_read_what_one_stream_reads() -> None:
    """The batch scan cuts batches across media wherever its queue stands: with one memory
    across the calls, the reads (and the text facts) are those of each media's own stream."""
    a_frames, b_frames = video("iiiiciii", media="a"), video("iiii", media="b")
    alone = Reading()
    expected = {
        m: [f.text for f in Analyzer(ocr=alone, ocr_interval_s=1.0).analyze(iter(fs))]
        for m, fs in (("a", a_frames), ("b", b_frames))
    }
    mixed = Reading()
    analyzer = Analyzer(ocr=mixed, ocr_interval_s=1.0)
    memory: dict = {}
    got: dict[str, list] = {"a": [], "b": []}
    cuts = [a_frames[:1] + b_frames[:2], a_frames[1:5], b_frames[2:] + a_frames[5:]]
    for batch in cuts:
        for f in analyzer.analyze_batch(batch, memory):
            got[f.media_id].append(f.text)
    assert got == expected
    assert sum(map(len, mixed.calls)) == sum(map(len, alone.calls))  # nothing read twice
    # without the memory, each batch is its own stream: the first keyframe of each is read
    fresh = Reading()
    for batch in cuts:
        Analyzer(ocr=fresh, ocr_interval_s=1.0).analyze_batch(batch)
    assert sum(map(len, fresh.calls)) > sum(map(len, alone.calls))


def test_ocr_reads_every_still_image_and_each_media_once_first() -> None:
    r = Reading()
    a = Analyzer(ocr=r, ocr_interval_s=10.0)
    stills = [
        Frame(f"img{k}", 0.0, np.full((8, 8, 3), 50 + k, np.uint8), reason="image")
        for k in range(2)
    ]
    a.analyze_batch(stills + video("ii", media="a") + video("ii", media="b"))
    assert r.calls == [[50, 51, 1, 1]]


def test_ocr_interval_zero_reads_every_keyframe() -> None:
    r = Reading()
    list(Analyzer(ocr=r, ocr_interval_s=0.0).analyze(iter(video("iii"))))
    assert r.calls == [[1, 2, 3]]


@pytest.mark.parametrize("interval", [-1.0, float("nan"), float("inf")])
def test_bad_ocr_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="ocr_interval_s must be a finite time >= 0 s"):
        Analyzer(ocr=Reading(), ocr_interval_s=interval)


class Words:
    """A semantic model whose text side maps every text to one fixed axis, and a reader that
    reads what the test says: the blend is then checkable by hand."""

    def __init__(self, reads: dict[int, list[TextRead]]) -> None:
        self.reads = reads
        self.texts: list[list[str]] = []

    def embed_images(self, images):
        return np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], np.float32), (len(images), 1))

    def embed_texts(self, texts):
        self.texts.append(list(texts))
        return np.tile(np.array([[0.0, 1.0, 0.0, 0.0]], np.float32), (len(texts), 1))

    def read_many(self, images):
        return [self.reads.get(int(img[0, 0, 0]), []) for img in images]


def test_read_text_moves_the_embedding_by_its_amount_and_confidence() -> None:
    banner = [TextRead("WINTERTYRESSALE", 0.99, (0.0, 0.0, 0.5, 0.1))] * 4  # 63 chars: full
    word = [TextRead("SALE", 0.99, (0.0, 0.0, 0.1, 0.1))]  # 4 chars: a tenth of the weight
    noise = [TextRead("Imsoocletrisresplan", 0.58, (0.0, 0.0, 0.1, 0.1))]  # unsure: left out
    w = Words({1: banner, 2: word, 3: noise})
    facts = Analyzer(semantic=w, ocr=w, ocr_interval_s=0.0).analyze_batch(
        [Frame(f"m{i}", 0.0, np.full((8, 8, 3), i, np.uint8), reason="image") for i in (1, 2, 3)]
    )
    a_full, a_word = 0.35, 0.35 * 4 / 40
    for f, a in zip(facts, (a_full, a_word, 0.0), strict=True):
        want = np.array([1.0 - a, a, 0.0, 0.0])
        np.testing.assert_allclose(f.embedding, want / np.linalg.norm(want), atol=1e-6)
    assert w.texts == [sorted({" ".join(["WINTERTYRESSALE"] * 4), "SALE"})]  # once per batch


def test_text_blend_zero_keeps_the_image_embedding_and_bad_values_are_refused() -> None:
    w = Words({1: [TextRead("WINTER TYRES SALE", 0.99, (0.0, 0.0, 0.5, 0.1))]})
    (f,) = Analyzer(semantic=w, ocr=w, text_blend=0.0).analyze_batch(
        [Frame("m", 0.0, np.full((8, 8, 3), 1, np.uint8), reason="image")]
    )
    np.testing.assert_array_equal(f.embedding, [1.0, 0.0, 0.0, 0.0])
    assert w.texts == []
    with pytest.raises(ValueError, match=r"text_blend must be in 0\.\.1, got 1\.5"):
        Analyzer(text_blend=1.5)
