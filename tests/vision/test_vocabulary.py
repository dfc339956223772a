from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_rgb
from tests.vision.test_clip_embedder import TINY_MODEL, register_tiny_model
from vision.clip_embedder import ClipEmbedder
from vision.errors import ModelError
from vision.types import ConceptScore
from vision.vocabulary import (
    CACHE_DIR_ENV,
    ConceptVocabulary,
    VocabularyIndex,
    default_cache_dir,
    top_k_scores,
)


class CountingEmbedder:
    """Wraps a real embedder and counts text-tower requests (calls and prompts)."""

    def __init__(self, inner: ClipEmbedder, model_id: str | None = None) -> None:
        self.inner = inner
        self.calls = 0
        self.prompts = 0
        self._model_id = model_id or inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def model_id(self) -> str:
        return self._model_id

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.prompts += len(texts)
        return self.inner.embed_texts(texts)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ClipEmbedder:
    register_tiny_model(tmp_path_factory.mktemp("clip-config"))
    return ClipEmbedder(TINY_MODEL, random_weights=True, device="cpu")


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(d))
    return d


def test_iab_vocabulary_sizes() -> None:
    full = ConceptVocabulary.from_iab()
    plain = ConceptVocabulary.from_iab(include_sensitive=False)
    assert len(full) == 704 and len(plain) == 641
    assert set(plain.ids) < set(full.ids)
    assert all(len(p) == 2 for p in full.prompts)
    i = full.ids.index("1")
    assert full.names[i] == "Automotive"
    assert full.prompts[i] == ("a photo about automotive", "a video frame about automotive")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "onscreen"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path


def test_iab_matrix_is_cached_on_disk_and_reused(tiny: ClipEmbedder, cache_dir: Path) -> None:
    counting = CountingEmbedder(tiny)
    vocab = ConceptVocabulary.from_iab()
    first = vocab.matrix(counting)
    assert (counting.calls, counting.prompts) == (1, 1408)  # all prompts in one request
    assert first.shape == (704, 32) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    path = vocab.cache_path(counting)
    assert path.is_file() and path.parent == cache_dir / "concepts"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind

    again = ConceptVocabulary.from_iab().matrix(counting)  # a fresh object, as after a restart
    assert counting.calls == 1  # the text tower was not asked again
    np.testing.assert_array_equal(again, first)

    other_model = CountingEmbedder(tiny, model_id="another-model@sha256:0123")
    vocab.matrix(other_model)
    assert other_model.calls == 1  # a different model_id never reuses the matrix
    assert len(list(path.parent.glob("*.npz"))) == 2


def test_matrix_is_normalized_mean_of_prompts(tiny: ClipEmbedder, tmp_path: Path) -> None:
    vocab = ConceptVocabulary.from_prompts(
        {"snow-car": ["a car on a snowy road", "winter driving"], "coffee": "a cup of coffee"}
    )
    assert vocab.names == vocab.ids == ("snow-car", "coffee")
    mat = vocab.matrix(tiny, cache_dir=tmp_path)
    e = tiny.embed_texts(["a car on a snowy road", "winter driving", "a cup of coffee"])
    mean = (e[0] + e[1]) / 2
    np.testing.assert_allclose(mat[0], mean / np.linalg.norm(mean), atol=1e-6)
    np.testing.assert_allclose(mat[1], e[2], atol=1e-6)


def test_changed_prompts_get_their_own_cache_entry(tiny: ClipEmbedder, tmp_path: Path) -> None:
    a = ConceptVocabulary.from_prompts({"x": "a red bus"})
    b = ConceptVocabulary.from_prompts({"x": "a blue bus"})
    assert a.cache_path(tiny, tmp_path) != b.cache_path(tiny, tmp_path)
    assert a.prompts_hash != b.prompts_hash
    assert a.cache_path(tiny, tmp_path) == ConceptVocabulary.from_prompts(
        {"x": ["a red bus"]}
    ).cache_path(tiny, tmp_path)


def test_corrupt_cache_is_rebuilt(tiny: ClipEmbedder, tmp_path: Path, caplog) -> None:
    vocab = ConceptVocabulary.from_prompts({"bus": "a bus", "cat": "a cat"})
    good = vocab.matrix(tiny, cache_dir=tmp_path)
    path = vocab.cache_path(tiny, tmp_path)
    path.write_bytes(b"PK\x03\x04 this is not a zip")
    counting = CountingEmbedder(tiny)
    with caplog.at_level(logging.WARNING, logger="vision.vocabulary"):
        rebuilt = vocab.matrix(counting, cache_dir=tmp_path)
    assert counting.calls == 1
    assert "unreadable" in caplog.text and str(path) in caplog.text
    np.testing.assert_array_equal(rebuilt, good)
    assert vocab.matrix(counting, cache_dir=tmp_path) is not None and counting.calls == 1


def test_unwritable_cache_only_warns(tiny: ClipEmbedder, tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    vocab = ConceptVocabulary.from_prompts({"bus": "a bus"})
    with caplog.at_level(logging.WARNING, logger="vision.vocabulary"):
        mat = vocab.matrix(tiny, cache_dir=blocker)
    assert mat.shape == (1, 32)
    assert "cannot write concept cache" in caplog.text


@pytest.mark.parametrize(
    "ids, names, prompts, expectation",
    [
        (("a",), ("A",), (("p",),), does_not_raise()),
        (
            ("a", "a"),
            ("A", "B"),
            (("p",), ("q",)),
            pytest.raises(ValueError, match="'a' appears twice"),
        ),
        (
            ("a",),
            ("A",),
            ((),),
            pytest.raises(ValueError, match=r"'a' needs 1\.\.64 prompts, got 0"),
        ),
        (("a",), ("A",), (("  ",),), pytest.raises(ValueError, match="empty or non-text prompt")),
        (
            ("a", "b"),
            ("A",),
            (("p",), ("q",)),
            pytest.raises(ValueError, match="one entry per concept"),
        ),
        ((), (), (), pytest.raises(ValueError, match="at least one concept")),
    ],
)
def test_vocabulary_validation(ids, names, prompts, expectation) -> None:
    with expectation:
        assert len(ConceptVocabulary(ids, names, prompts)) == len(ids)


def _unit(rows: list[list[float]]) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_top_k_order_and_shape() -> None:
    vocab = ConceptVocabulary.from_prompts({c: f"{c}" for c in "abcd"})
    matrix = np.eye(4, dtype=np.float32)
    emb = _unit([[0.1, 0.7, 0.2, 0.0], [0.0, 0.0, 1.0, 3.0], [1.0, 1.0, 0.0, 0.0]])
    got = vocab.top_k(emb, matrix, 3)
    assert [[s.id for s in row] for row in got] == [
        ["b", "c", "a"],
        ["d", "c", "a"],  # a and b tie at 0: row order decides
        ["a", "b", "c"],  # a and b tie at 0.707: row order decides
    ]
    assert got[0][0] == ConceptScore("b", "b", pytest.approx(float(emb[0, 1])))
    assert all(len(row) == 3 for row in got)
    assert [len(r) for r in vocab.top_k(emb, matrix, 10)] == [4, 4, 4]  # k above K: all of them
    assert vocab.top_k(emb[:0], matrix, 2) == []


@pytest.mark.parametrize(
    "emb, matrix, k, message",
    [
        (
            np.ones((2, 3), np.float32),
            np.eye(4, dtype=np.float32),
            1,
            r"must be \(N, 4\), got \(2, 3\)",
        ),
        (np.ones((2, 4), np.float32), np.eye(4, dtype=np.float32), 0, r"k must be in 1\.\.1000"),
        (
            np.ones((2, 4), np.float32),
            np.eye(3, 4, dtype=np.float32),
            1,
            r"matrix must be \(4, D\)",
        ),
        (np.ones((2, 4), np.int64), np.eye(4, dtype=np.float32), 1, "must be floating point"),
    ],
)
def test_top_k_errors(emb, matrix, k, message) -> None:
    """Bad embeddings are the model's fault (ModelError); a bad k or matrix is the caller's."""
    error = ModelError if message.startswith(("must", "r")) or "floating" in message else ValueError
    with pytest.raises(error, match=message) as got:
        top_k_scores(emb, matrix, list("abcd"), list("abcd"), k)
    assert type(got.value) is error


def test_index_ranks_real_frames(tiny: ClipEmbedder, real_images, tmp_path: Path) -> None:
    """The Analyzer's ConceptRanker: IAB matrix x real photo embeddings, one product."""
    vocab = ConceptVocabulary.from_iab()
    index = vocab.index(tiny, cache_dir=tmp_path)
    assert isinstance(index, VocabularyIndex) and index.dim == 32
    assert not index.matrix.flags.writeable
    emb = tiny.embed_images([read_rgb(real_images[n]) for n in ("bus", "coffee", "chelsea")])
    top = index.top_k(emb, 5)
    assert len(top) == 3 and all(len(row) == 5 for row in top)
    full = emb @ index.matrix.T
    for i, row in enumerate(top):
        scores = [s.score for s in row]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(float(full[i].max()), abs=1e-6)
        for s in row:
            j = vocab.ids.index(s.id)
            assert s.name == vocab.names[j]
            assert s.score == pytest.approx(float(full[i, j]), abs=1e-6)
    with pytest.raises(ValueError, match=r"matrix must be \(704, D\)"):
        VocabularyIndex(vocab, index.matrix[:10])
