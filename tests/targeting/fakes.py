"""A deterministic stand-in for the CLIP embedder, and helpers to build frames with known cosines.

``FakeEmbedder`` maps every text (and every image file, by its bytes) to a fixed pseudo-random unit
vector seeded by a sha256 of it, so tests need no model and are repeatable. ``frame_embedding``
builds a unit vector whose cosine with chosen concept vectors is exactly what the test asks
for, so a test can put a keyframe just above or just below a threshold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vision.semantic import CLIP_SCALE

FAKE_DIM = 64
"""Small but high enough that unrelated random unit vectors have cosines near 0 (sd ~ 0.125)."""


def _unit(seed_text: bytes, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(seed_text).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeEmbedder:
    """A ``SemanticModel``: texts and image files -> (N, dim) float32 unit rows, deterministic.

    ``calls`` records each call (``("texts", n)`` / ``("images", n)``) so tests can check that
    every distinct concept is embedded once.
    """

    def __init__(self, dim: int = FAKE_DIM) -> None:
        self._dim = dim
        self.calls: list[tuple[str, int]] = []

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model_id(self) -> str:
        return f"fake-sha256-{self._dim}"

    name = "fake"
    meaningful = True
    score_scale = CLIP_SCALE
    neutral_texts: tuple[str, ...] = ()
    """CLIP's scale: the rules' thresholds apply unchanged, as the tests write them."""

    def text_vector(self, text: str) -> np.ndarray:
        return _unit(b"text:" + text.encode(), self._dim)

    def image_vector(self, path: Path) -> np.ndarray:
        return _unit(b"image:" + Path(path).read_bytes(), self._dim)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("texts", len(texts)))
        return np.stack([self.text_vector(t) for t in texts]).reshape(len(texts), self._dim)

    def embed_image_files(self, paths: Sequence[Path]) -> np.ndarray:
        self.calls.append(("images", len(paths)))
        return np.stack([self.image_vector(p) for p in paths]).reshape(len(paths), self._dim)


def frame_embedding(
    targets: Mapping[str, float] | Sequence[tuple[np.ndarray, float]],
    embedder: FakeEmbedder | None = None,
    *,
    seed: int = 0,
    dim: int = FAKE_DIM,
) -> np.ndarray:
    """A unit (dim,) float32 vector whose cosine with each target vector is the given value.

    ``targets`` is ``{prompt: cosine}`` (prompts embedded by ``embedder``) or a sequence of
    ``(unit_vector, cosine)``. Solves for the component in the span of the targets, then fills the
    rest of the unit length with a random direction orthogonal to them.
    """
    if isinstance(targets, Mapping):
        assert embedder is not None, "prompts need an embedder"
        pairs = [(embedder.text_vector(p), c) for p, c in targets.items()]
        dim = embedder.dim
    else:
        pairs = list(targets)
    rng = np.random.default_rng(seed)
    if not pairs:
        v = rng.standard_normal(dim)
        return (v / np.linalg.norm(v)).astype(np.float32)
    basis = np.stack([p[0] for p in pairs]).astype(np.float64)  # (m, D)
    want = np.asarray([p[1] for p in pairs], dtype=np.float64)
    coef = np.linalg.solve(basis @ basis.T, want)
    par = basis.T @ coef
    rest = 1.0 - float(par @ par)
    assert rest >= 0, f"cosines {want} are not jointly reachable"
    r = rng.standard_normal(basis.shape[1])
    r -= basis.T @ np.linalg.solve(basis @ basis.T, basis @ r)
    v = par + np.sqrt(rest) * r / np.linalg.norm(r)
    return v.astype(np.float32)
