"""The vector part of the catalog: a FAISS index over int64 ids, with in-search filtering.

Kinds (chosen by ``choose_kind`` from the number of live items):

- ``flat``: exact inner product (``IndexFlatIP``) on L2-normalized vectors, i.e. exact cosine.
  Deletes are real (``remove_ids``).
- ``hnsw``: ``IndexHNSWFlat`` with the inner-product metric, for large catalogs. HNSW cannot
  remove a node, so a delete is a **tombstone**: the id leaves the live bitmap, which is passed
  to FAISS as an ``IDSelectorBitmap`` so dead nodes are skipped *inside* the graph search;
  ``rebuilt`` drops them (the catalog does it on save when they are many).

Either kind can be **compressed** with an 8-bit scalar quantizer (``sq8``: 1 byte per dimension
instead of 4), trained on the first vectors added.

Every kind is wrapped in an ``IndexIDMap2`` so the catalog's ids are stable int64s that survive
deletes and rebuilds, and ``reconstruct`` works (query by item id, near-duplicate removal).

Filters arrive as a boolean mask over ids (``allowed``) and become part of the same bitmap:
FAISS only ever returns allowed, live ids, so ``k`` results are ``k`` matches, not ``k``
candidates of which some get thrown away. A filter that allows few items on an HNSW index is
answered by exact search over exactly those items (``EXACT_FILTER_MAX_ITEMS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import faiss
import numpy as np

from vision.catalog.limits import (
    DEFAULT_HNSW_EF_CONSTRUCTION,
    DEFAULT_HNSW_EF_SEARCH,
    DEFAULT_HNSW_M,
    DEFAULT_HNSW_MIN_ITEMS,
    EXACT_FILTER_MAX_ITEMS,
)

IndexKind = Literal["flat", "hnsw"]
Compression = Literal["none", "sq8"]
KINDS: tuple[IndexKind, ...] = ("flat", "hnsw")
COMPRESSIONS: tuple[Compression, ...] = ("none", "sq8")


@dataclass(frozen=True)
class IndexConfig:
    """How the catalog indexes vectors; stored in the snapshot manifest.

    ``hnsw_min_items``: live items at which a rebuild picks HNSW over exact flat search.
    ``m``, ``ef_construction``, ``ef_search``: the HNSW knobs (see ``limits``).
    ``compression``: ``"none"`` (float32) or ``"sq8"`` (8-bit scalar quantizer).
    """

    hnsw_min_items: int = DEFAULT_HNSW_MIN_ITEMS
    m: int = DEFAULT_HNSW_M
    ef_construction: int = DEFAULT_HNSW_EF_CONSTRUCTION
    ef_search: int = DEFAULT_HNSW_EF_SEARCH
    compression: Compression = "none"

    def __post_init__(self) -> None:
        for name in ("hnsw_min_items", "m", "ef_construction", "ef_search"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "hnsw_min_items": self.hnsw_min_items,
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "compression": self.compression,
        }

    def choose_kind(self, live_items: int) -> IndexKind:
        """Exact flat search below ``hnsw_min_items`` live items, HNSW from there on."""
        return "hnsw" if live_items >= self.hnsw_min_items else "flat"


def _as_matrix(vectors: np.ndarray, dim: int, name: str) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {np.asarray(vectors).shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def normalized(vectors: np.ndarray, dim: int, name: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous float32 (N, dim) matrix of unit rows.

    Rows are re-normalized (a model's float noise, or a caller's raw features); a zero row has
    no direction and is a ``ValueError``.
    """
    x = _as_matrix(vectors, dim, name)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms < 1e-12):
        raise ValueError(f"{name} contains an all-zero vector (no direction to compare)")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def _bitmap(mask: np.ndarray) -> np.ndarray:
    # faiss.IDSelectorBitmap: id i is selected when bit (i & 7) of byte (i >> 3) is set
    return np.packbits(mask.astype(np.uint8), bitorder="little")


class VectorIndex:
    """A FAISS index of unit vectors keyed by int64 ids, with a live bitmap.

    Not thread-safe on its own: the catalog holds a readers-writer lock around it.
    """

    def __init__(self, dim: int, kind: IndexKind, config: IndexConfig) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.dim = dim
        self.kind: IndexKind = kind
        self.config = config
        self._index: Any = faiss.IndexIDMap2(self._make_inner(dim, kind, config))
        self._live = np.zeros(1024, dtype=bool)
        self._n_live = 0
        self._live_bitmap: np.ndarray | None = None  # packed self._live, rebuilt after writes

    @staticmethod
    def _make_inner(dim: int, kind: IndexKind, config: IndexConfig) -> Any:
        ip = faiss.METRIC_INNER_PRODUCT
        sq8: Any = faiss.ScalarQuantizer.QT_8bit  # faiss's own stubs type this enum wrongly
        if kind == "flat":
            if config.compression == "sq8":
                return faiss.IndexScalarQuantizer(dim, sq8, ip)
            return faiss.IndexFlatIP(dim)
        inner: Any
        if config.compression == "sq8":
            inner = faiss.IndexHNSWSQ(dim, sq8, config.m, ip)
        else:
            inner = faiss.IndexHNSWFlat(dim, config.m, ip)
        inner.hnsw.efConstruction = config.ef_construction
        inner.hnsw.efSearch = config.ef_search
        return inner

    # -- size -------------------------------------------------------------------------------

    @property
    def n_live(self) -> int:
        """Ids that search can return."""
        return self._n_live

    @property
    def n_stored(self) -> int:
        """Vectors held by FAISS, tombstones included."""
        return int(self._index.ntotal)

    @property
    def n_tombstones(self) -> int:
        return self.n_stored - self._n_live

    def live_ids(self) -> np.ndarray:
        return np.flatnonzero(self._live).astype(np.int64)

    def is_live(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self._live))
        out = np.zeros(len(ids), dtype=bool)
        out[inside] = self._live[ids[inside]]
        return out

    def stored_ids(self) -> np.ndarray:
        """Every id FAISS holds (live or tombstoned), in storage order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    # -- writes -----------------------------------------------------------------------------

    def _grow(self, max_id: int) -> None:
        if max_id >= len(self._live):
            size = len(self._live)
            while size <= max_id:
                size *= 2
            grown = np.zeros(size, dtype=bool)
            grown[: len(self._live)] = self._live
            self._live = grown

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add unit vectors under new ids (ids must not be stored already)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        x = normalized(vectors, self.dim)
        if len(ids) != len(x):
            raise ValueError(f"{len(ids)} ids for {len(x)} vectors")
        if len(ids) == 0:
            return
        if ids.min() < 0:
            raise ValueError("ids must be >= 0")
        self._grow(int(ids.max()))
        if np.any(self._live[ids]) or len(np.unique(ids)) != len(ids):
            raise ValueError("add: some ids are already stored or repeated")
        if not self._index.is_trained:
            self._index.train(x)  # sq8: learns each dimension's range from these vectors
        self._index.add_with_ids(x, ids)
        self._live_bitmap = None
        self._live[ids] = True
        self._n_live += len(ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ones are ignored); returns how many were live.

        Flat indexes drop the vectors; HNSW keeps them as tombstones until ``rebuilt``.
        """
        ids = np.asarray(ids, dtype=np.int64)
        ids = np.unique(ids[self.is_live(ids)])
        if len(ids) == 0:
            return 0
        if self.kind == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids)))
        self._live[ids] = False
        self._live_bitmap = None
        self._n_live -= len(ids)
        return len(ids)

    # -- reads ------------------------------------------------------------------------------

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (decoded, so approximate under ``sq8``), (N, dim)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` live (and ``allowed``) ids by inner product for each unit query.

        ``queries``: (Q, dim) float32. ``allowed``: optional bool mask indexed by id (ids past its
        end are not allowed). Returns ``(scores, ids)``, both (Q, k), best first, padded with
        ``-inf`` / ``-1`` when fewer than ``k`` ids qualify.
        """
        q = normalized(queries, self.dim, "queries")
        mask: np.ndarray | None = None
        if allowed is not None:
            n = min(len(allowed), len(self._live))
            mask = np.zeros(len(self._live), dtype=bool)
            mask[:n] = self._live[:n] & np.asarray(allowed[:n], dtype=bool)
        elif self.n_tombstones:
            mask = self._live
        n_ok = self._n_live if mask is None else int(mask.sum())
        if n_ok == 0:
            return _empty(len(q), k)
        if mask is not None and self.kind == "hnsw" and n_ok <= EXACT_FILTER_MAX_ITEMS:
            return self._exact_over(q, k, np.flatnonzero(mask).astype(np.int64))
        params: Any
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in stubs
            params.efSearch = max(self.config.ef_search, k)
        else:
            params = faiss.SearchParameters()
        bitmap = None
        if mask is not None:
            if allowed is None:  # tombstones only: the same bitmap for every query until a write
                if self._live_bitmap is None:
                    self._live_bitmap = _bitmap(self._live)
                bitmap = self._live_bitmap
            else:
                bitmap = _bitmap(mask)
            params.sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        scores, ids = self._index.search(q, k, params=params)
        del bitmap  # kept alive until here: the selector points into it
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return scores, ids.astype(np.int64)

    def _exact_over(self, q: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vecs = self.reconstruct(ids)
        sims = q @ vecs.T
        kk = min(k, len(ids))
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        top_s = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        scores, out_ids = _empty(len(q), k)
        scores[:, :kk] = np.take_along_axis(top_s, order, axis=1)
        out_ids[:, :kk] = ids[np.take_along_axis(top, order, axis=1)]
        return scores, out_ids

    # -- persistence and rebuild ------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(
        cls, data: bytes, dim: int, kind: IndexKind, config: IndexConfig, live: np.ndarray
    ) -> VectorIndex:
        """Load a serialized index; ``live`` are the ids that are not tombstones."""
        self = cls.__new__(cls)
        self.dim = dim
        self.kind = kind
        self.config = config
        self._index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if self._index.d != dim:
            raise ValueError(f"serialized index has dim {self._index.d}, expected {dim}")
        inner: Any = faiss.downcast_index(self._index.index)
        if kind == "hnsw":
            inner.hnsw.efSearch = config.ef_search
        self._live = np.zeros(1024, dtype=bool)
        live = np.asarray(live, dtype=np.int64)
        if len(live):
            self._grow(int(live.max()))
            self._live[live] = True
        self._n_live = len(live)
        self._live_bitmap = None
        stored = self.stored_ids()
        if not np.all(np.isin(live, stored)):
            raise ValueError("live ids missing from the serialized index")
        return self

    def rebuilt(self, kind: IndexKind | None = None) -> VectorIndex:
        """A new index holding only the live vectors (no tombstones), of ``kind`` (default:
        ``config.choose_kind(n_live)``). The compressed kinds retrain on these vectors."""
        kind = kind or self.config.choose_kind(self._n_live)
        ids = self.live_ids()
        fresh = VectorIndex(self.dim, kind, self.config)
        if len(ids):
            fresh.add(ids, self.reconstruct(ids))
        return fresh


def _empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)
