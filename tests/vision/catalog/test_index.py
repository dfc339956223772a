"""The FAISS layer: exact search equals brute force, filters run inside the search, deletes
(real or tombstones) are never returned."""

from __future__ import annotations

import numpy as np
import pytest

from tests.vision.catalog.vectors import unit_rows
from vision.catalog import index as index_module
from vision.catalog.index import IndexConfig, VectorIndex

DIM = 48
N = 3000


def _brute(x: np.ndarray, q: np.ndarray, k: int, ids: np.ndarray) -> np.ndarray:
    sims = q @ x[ids].T
    return ids[np.argsort(-sims, axis=1, kind="stable")[:, :k]]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return unit_rows(N, DIM, seed=1), unit_rows(40, DIM, seed=2)


def _index(kind: str, x: np.ndarray, compression: str = "none", ef: int = 200) -> VectorIndex:
    vi = VectorIndex(DIM, kind, IndexConfig(compression=compression, ef_search=ef))  # type: ignore[arg-type]
    vi.add(np.arange(len(x)), x)
    return vi


def test_flat_equals_brute_force(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    scores, ids = _index("flat", x).search(q, 10)
    np.testing.assert_array_equal(ids, _brute(x, q, 10, np.arange(N)))
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, ids, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind, compression, min_recall", [
    ("hnsw", "none", 0.98), ("flat", "sq8", 0.9), ("hnsw", "sq8", 0.9),
])  # fmt: skip
def test_approximate_kinds_find_the_true_neighbours(
    data: tuple[np.ndarray, np.ndarray], kind: str, compression: str, min_recall: float
) -> None:
    x, q = data
    _, ids = _index(kind, x, compression).search(q, 10)
    assert _recall(ids, _brute(x, q, 10, np.arange(N))) >= min_recall


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("exact_filter_max", [0, 10**9])  # HNSW: bitmap in the graph / exact subset
def test_filters_are_applied_inside_the_search(
    data: tuple[np.ndarray, np.ndarray],
    kind: str,
    exact_filter_max: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "EXACT_FILTER_MAX_ITEMS", exact_filter_max)
    x, q = data
    vi = _index(kind, x)
    allowed = np.zeros(N, dtype=bool)
    allowed[::3] = True  # a third of the catalog
    _, ids = vi.search(q, 10, allowed)
    assert np.all(ids >= 0) and np.all(allowed[ids])  # k allowed results, not k candidates
    truth = _brute(x, q, 10, np.flatnonzero(allowed))
    assert _recall(ids, truth) >= (1.0 if kind == "flat" or exact_filter_max else 0.95)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_filter_admitting_fewer_than_k_returns_exactly_those(
    data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    x, q = data
    allowed = np.zeros(N, dtype=bool)
    allowed[[5, 50, 500, 2999]] = True
    scores, ids = _index(kind, x).search(q[:3], 10, allowed)
    for row_s, row in zip(scores, ids, strict=True):
        assert sorted(row[:4]) == [5, 50, 500, 2999]
        assert list(row[4:]) == [-1] * 6 and np.all(np.isneginf(row_s[4:]))
    assert np.all(_index(kind, x).search(q[:1], 5, np.zeros(N, bool))[1] == -1)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_removed_ids_are_never_returned_and_rebuild_drops_tombstones(
    data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    x, _ = data
    vi = _index(kind, x)
    gone = np.arange(0, 1000)
    assert vi.remove(gone) == 1000 and vi.remove(gone) == 0
    _, ids = vi.search(x[:50], 5)
    assert not np.isin(ids, gone).any()
    assert vi.n_live == N - 1000
    assert vi.n_tombstones == (1000 if kind == "hnsw" else 0)
    fresh = vi.rebuilt()
    assert fresh.n_tombstones == 0 and fresh.n_live == N - 1000
    np.testing.assert_array_equal(fresh.search(x[1000:1010], 1)[1][:, 0], np.arange(1000, 1010))


def test_serialization_round_trip_keeps_tombstones_out(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    vi = _index("hnsw", x)
    vi.remove(np.arange(10))
    back = VectorIndex.from_bytes(vi.to_bytes(), DIM, "hnsw", vi.config, vi.live_ids())
    np.testing.assert_array_equal(back.search(q, 5)[1], vi.search(q, 5)[1])
    assert back.n_tombstones == 10


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, DIM)), "all-zero vector"),
    (np.full((1, DIM), np.nan), "NaN or infinite"),
    (np.ones((1, DIM + 1)), rf"shape \(N, {DIM}\)"),
    (np.ones((1, DIM), dtype=np.int64), "floating point"),
])  # fmt: skip
def test_bad_vectors_are_refused(bad: np.ndarray, message: str) -> None:
    vi = VectorIndex(DIM, "flat", IndexConfig())
    with pytest.raises(ValueError, match=message):
        vi.add(np.arange(len(bad)), bad)


def test_choose_kind_by_size() -> None:
    cfg = IndexConfig(hnsw_min_items=100)
    assert (cfg.choose_kind(99), cfg.choose_kind(100)) == ("flat", "hnsw")
    with pytest.raises(ValueError, match="compression must be one of"):
        IndexConfig(compression="pq")  # type: ignore[arg-type]
