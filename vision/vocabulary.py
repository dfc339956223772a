"""A vocabulary of named concepts, each a few prompts, stacked into one (K, D) matrix.

Scoring every keyframe against every concept is then one matrix product, ``(N, D) @ (D, K)``.
A concept's row is the mean of its prompt embeddings, re-normalized (prompt ensembling, as in
the CLIP paper: an average of wordings is steadier than any single one). Building it for the
704 IAB categories runs ~1400 prompts through the text tower, seconds on a CPU at every start,
so it is cached on disk (``.npz``), keyed by the embedder's ``model_id`` and a hash of every id
and prompt: a different model, weights or wording rebuilds it, nothing else does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.atomic_write import atomic_write
from vision.semantic import SemanticModel, check_embeddings
from vision.taxonomy import iab_categories
from vision.types import ConceptScore

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "ONSCREEN_CACHE_DIR"
"""Environment variable naming the cache directory (default ``~/.cache/onscreen``)."""
CACHE_SUBDIR = "concepts"
"""Concept matrices live in ``<cache dir>/concepts/<key>.npz``."""
MAX_PROMPTS_PER_CONCEPT = 64
"""More wordings than this add text-tower time, not accuracy."""
MAX_TOP_K = 1000
"""Largest ``k`` for ``top_k``: a display list, not a full ranking."""


def default_cache_dir() -> Path:
    """``$ONSCREEN_CACHE_DIR`` if set, else ``~/.cache/onscreen``."""
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "onscreen"


def top_k_scores(
    embeddings: np.ndarray, matrix: np.ndarray, ids: Sequence[str], names: Sequence[str], k: int
) -> list[list[ConceptScore]]:
    """Best ``k`` rows of ``matrix`` for each embedding, highest cosine first.

    ``embeddings`` (N, D) and ``matrix`` (K, D) are L2-normalized, so one product gives all
    N x K cosines. Ties keep row order.
    """
    if not 1 <= k <= MAX_TOP_K:
        raise ValueError(f"k must be in 1..{MAX_TOP_K}, got {k}")
    mat = np.asarray(matrix, dtype=np.float32)
    if mat.ndim != 2 or mat.shape[0] != len(ids):
        raise ValueError(f"matrix must be ({len(ids)}, D) for {len(ids)} concepts, got {mat.shape}")
    emb = check_embeddings(embeddings, mat.shape[1])
    if emb.shape[0] == 0:
        return []
    scores = emb @ mat.T  # (N, K)
    kk = min(k, mat.shape[0])
    # A stable sort (not argpartition) so ties always resolve to the earlier concept and the
    # same frame shows the same list on every run; N x K log K is microseconds for K ~ 1000.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    out: list[list[ConceptScore]] = []
    for row, idx in zip(scores, order, strict=True):
        out.append([ConceptScore(ids[j], names[j], float(row[j])) for j in idx])
    return out


@dataclass(frozen=True)
class ConceptVocabulary:
    """Named concepts and their prompts: ``ids[i]`` is described by ``prompts[i]``.

    ``ids`` are unique (IAB ids like ``"150"``, or a rule's own key); ``names`` are for display;
    each ``prompts[i]`` holds 1..``MAX_PROMPTS_PER_CONCEPT`` non-empty strings.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.names) == len(self.prompts)):
            raise ValueError(
                f"ids, names and prompts must have one entry per concept, got "
                f"{len(self.ids)}, {len(self.names)}, {len(self.prompts)}"
            )
        if not self.ids:
            raise ValueError("a vocabulary needs at least one concept")
        seen: set[str] = set()
        for cid, plist in zip(self.ids, self.prompts, strict=True):
            if cid in seen:
                raise ValueError(f"concept id {cid!r} appears twice")
            seen.add(cid)
            if not 1 <= len(plist) <= MAX_PROMPTS_PER_CONCEPT:
                raise ValueError(
                    f"concept {cid!r} needs 1..{MAX_PROMPTS_PER_CONCEPT} prompts, got {len(plist)}"
                )
            if any(not isinstance(p, str) or not p.strip() for p in plist):
                raise ValueError(f"concept {cid!r} has an empty or non-text prompt: {plist!r}")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_iab(cls, include_sensitive: bool = True) -> ConceptVocabulary:
        """All IAB Content Taxonomy 3.1 categories (704 with the sensitive SCD rows).

        ``include_sensitive=False`` leaves out the SCD rows, for deployments that must not
        label content with sensitive categories.
        """
        cats = [c for c in iab_categories() if include_sensitive or not c.sensitive]
        return cls(
            ids=tuple(c.id for c in cats),
            names=tuple(c.name for c in cats),
            prompts=tuple(tuple(c.prompts) for c in cats),
        )

    @classmethod
    def from_prompts(cls, mapping: Mapping[str, str | Sequence[str]]) -> ConceptVocabulary:
        """``{id: prompt}`` or ``{id: [prompt, ...]}``; the id doubles as the display name."""
        ids, plists = [], []
        for cid, value in mapping.items():
            ids.append(str(cid))
            plists.append((value,) if isinstance(value, str) else tuple(value))
        return cls(ids=tuple(ids), names=tuple(ids), prompts=tuple(plists))

    @property
    def prompts_hash(self) -> str:
        """sha256 over every id and prompt, in order (the wording part of the cache key)."""
        h = hashlib.sha256()
        for cid, plist in zip(self.ids, self.prompts, strict=True):
            h.update(cid.encode())
            h.update(b"\x1f")
            for p in plist:
                h.update(p.encode())
                h.update(b"\x1e")
            h.update(b"\x1d")
        return h.hexdigest()

    def cache_path(self, embedder: SemanticModel, cache_dir: Path | None = None) -> Path:
        """Where ``matrix`` keeps this vocabulary's matrix for ``embedder``."""
        key = hashlib.sha256(f"{embedder.model_id}\n{self.prompts_hash}".encode()).hexdigest()
        base = default_cache_dir() if cache_dir is None else Path(cache_dir)
        return base / CACHE_SUBDIR / f"{key[:32]}.npz"

    def matrix(
        self, embedder: SemanticModel, *, cache_dir: Path | None = None, use_cache: bool = True
    ) -> np.ndarray:
        """(K, D) float32, row i = normalized mean of concept i's prompt embeddings.

        Read from the disk cache when a valid entry exists; otherwise computed with one
        ``embed_texts`` call over all prompts and written atomically (temp file + rename, so
        two processes starting together never read half a file). An unreadable or mismatched
        cache entry is rebuilt; an unwritable cache directory only costs a warning.
        """
        path = self.cache_path(embedder, cache_dir) if use_cache else None
        if path is not None:
            cached = self._load(path, embedder)
            if cached is not None:
                return cached
        flat = [p for plist in self.prompts for p in plist]
        emb = check_embeddings(embedder.embed_texts(flat), embedder.dim, "embed_texts output")
        if emb.shape[0] != len(flat):
            raise ValueError(f"embed_texts returned {emb.shape[0]} rows for {len(flat)} prompts")
        counts = np.array([len(p) for p in self.prompts])
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        sums = np.add.reduceat(emb.astype(np.float64), starts, axis=0)
        mat = sums / counts[:, None]
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        mat = (mat / np.maximum(norms, 1e-12)).astype(np.float32)
        if path is not None:
            self._store(path, mat, embedder)
        return mat

    def _load(self, path: Path, embedder: SemanticModel) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            with path.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
                mat = data["matrix"]
                model_id = str(data["model_id"])
                prompts_hash = str(data["prompts_hash"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("concept cache %s is unreadable (%s); rebuilding it", path, exc)
            return None
        if (
            model_id != embedder.model_id
            or prompts_hash != self.prompts_hash
            or mat.shape != (len(self), embedder.dim)
            or mat.dtype != np.float32
        ):
            log.warning("concept cache %s does not match this vocabulary; rebuilding it", path)
            return None
        return mat

    def _store(self, path: Path, mat: np.ndarray, embedder: SemanticModel) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(
                path,
                lambda fh: np.savez(
                    fh,
                    matrix=mat,
                    model_id=np.array(embedder.model_id),
                    prompts_hash=np.array(self.prompts_hash),
                ),
                mode=0o644,  # a cache others may read
            )
        except OSError as exc:
            log.warning("cannot write concept cache %s (%s); it is rebuilt next start", path, exc)

    def top_k(self, embeddings: np.ndarray, matrix: np.ndarray, k: int) -> list[list[ConceptScore]]:
        """Best ``k`` concepts per frame: ``embeddings`` (N, D) against ``matrix`` (K, D).

        One matrix product for all frames; each inner list is sorted by cosine, highest first.
        """
        return top_k_scores(embeddings, matrix, self.ids, self.names, k)

    def index(
        self, embedder: SemanticModel, *, cache_dir: Path | None = None, use_cache: bool = True
    ) -> VocabularyIndex:
        """This vocabulary with its matrix for ``embedder``: a ready ``top_k(embeddings, k)``."""
        mat = self.matrix(embedder, cache_dir=cache_dir, use_cache=use_cache)
        return VocabularyIndex(self, mat)


@dataclass(frozen=True, eq=False)
class VocabularyIndex:
    """A vocabulary bound to its (K, D) matrix; what ``vision.analyze.Analyzer`` ranks with."""

    vocabulary: ConceptVocabulary
    matrix: np.ndarray

    def __post_init__(self) -> None:
        mat = np.asarray(self.matrix, dtype=np.float32)
        if mat.ndim != 2 or mat.shape[0] != len(self.vocabulary):
            raise ValueError(
                f"matrix must be ({len(self.vocabulary)}, D) for this vocabulary, got {mat.shape}"
            )
        mat = mat.copy()
        mat.setflags(write=False)
        object.__setattr__(self, "matrix", mat)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def top_k(self, embeddings: np.ndarray, k: int) -> list[list[ConceptScore]]:
        """Best ``k`` concepts for each of the N (D,) embeddings, highest cosine first."""
        return self.vocabulary.top_k(embeddings, self.matrix, k)
