"""One semantic-model protocol: images and texts as L2-normalized vectors in one shared space.

Concepts, IAB categories, prompt-based safety, example images and the catalog all ask the same
two questions of a model -- "where is this text?" and "where is this image?" -- and compare the
answers by cosine. Each model answers in its own space, on its own scale:

- ``clip``: a contrastive image-text model (open_clip ViT-B-32). Cosines of a matching
  image/prompt pair sit around 0.25-0.35, unrelated ones around 0.10-0.18.
- ``lite``: the embedded stack that runs on any CPU (``vision.lite``): an ImageNet classifier
  whose class probabilities are mapped into a sentence-embedding space (ConSE). Its cosines
  spread wider: unrelated pairs near 0, strong matches 0.4 and up.

So a threshold written for one model means something else for the other. Rules are written on
CLIP's scale (the contract in DESIGN.md); :func:`translate_threshold` maps a CLIP-scale
threshold onto another model's scale through the two models' :class:`ScoreScale` anchors, and
the rules compiler applies it, so one rules file behaves alike under both models.

``model_id`` names the space (model, weights, variant): caches of text embeddings and compiled
rule indexes are keyed by it, so switching models can never mix vectors of two spaces. ``meaningful`` is False for a
model with random weights (tests and benchmarks): callers say so to the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from vision.errors import ModelError

SemanticChoice = Literal["auto", "clip", "lite", "random", "off"]
SEMANTIC_CHOICES: tuple[str, ...] = ("auto", "clip", "lite", "random", "off")
"""``auto`` picks ``clip`` when its weights are fetched, else ``lite``; ``random`` is CLIP's
architecture with random weights, for tests and benchmarks only (``--random-weights``)."""


@dataclass(frozen=True)
class ScoreScale:
    """Two anchors of a model's cosine scale: ``unrelated`` is a typical score of an image and a
    text that have nothing to do with each other, ``strong`` one of a clear match. Thresholds
    map linearly between scales through these anchors."""

    unrelated: float
    strong: float

    def __post_init__(self) -> None:
        if not self.strong > self.unrelated:
            raise ValueError(
                f"a score scale needs strong > unrelated, got {self.unrelated}..{self.strong}"
            )


CLIP_SCALE = ScoreScale(unrelated=0.15, strong=0.30)
"""Measured on open_clip ViT-B-32 laion2b with "a photo of ..." prompts; the rules' defaults
(concept min_score 0.22 and so on) were written on this scale."""


@runtime_checkable
class SemanticModel(Protocol):
    """What every consumer of semantics needs from a model.

    Every ``embed_*`` method returns an ``(N, dim)`` float32 array with L2-normalized rows (an
    empty input gives ``(0, dim)``); images are RGB uint8 ``(H, W, 3)`` arrays of any size.
    """

    @property
    def name(self) -> str:
        """``clip``, ``clip-random`` or ``lite``: what a user reads in notices and metrics."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str:
        """Names the space (model, weights, variant): the key of every cache of its vectors."""
        ...

    @property
    def meaningful(self) -> bool:
        """False for random weights: scores are then mechanics, not meaning."""
        ...

    @property
    def score_scale(self) -> ScoreScale: ...

    @property
    def neutral_texts(self) -> tuple[str, ...]:
        """Ordinary content in the model's own words, beyond the shared neutral prompts: what a
        prompt softmax (brand safety) must weigh a frame against. ``lite`` builds image vectors
        from ImageNet class names, so a frame of an espresso is near "espresso" and nowhere near
        "a photo": only its own class names can take the mass from an unsafe prompt that
        happens to be nearer than "a photo" ("a glass of wine"). CLIP: ()."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_image_files(self, paths: Sequence[Path]) -> np.ndarray: ...

    @property
    def visual_dim(self) -> int:
        """Width of :meth:`visual_features`."""
        ...

    def visual_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalized appearance features for visual similarity (the catalog): the image
        backbone's pooled features, which keep what a shopper sees (colour, shape, texture)
        where the semantic vector keeps only what the picture is *of*."""
        ...


def check_embeddings(embeddings: np.ndarray, dim: int, what: str = "embeddings") -> np.ndarray:
    """Return ``embeddings`` as a (N, dim) float32 array, or raise ModelError saying why not
    (wrong shape, not floating point, NaN or inf).

    A ModelError, because vectors that break the contract are a fault of the model (or its
    weights), never of the request.
    """
    arr = np.asarray(embeddings)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ModelError(f"{what} must be (N, {dim}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ModelError(f"{what} must be floating point, got {arr.dtype}")
    if arr.size and not np.isfinite(arr).all():
        raise ModelError(f"{what} contain NaN or inf")
    return arr.astype(np.float32, copy=False)


def translate_threshold(
    threshold: float, to: ScoreScale, *, source: ScoreScale = CLIP_SCALE
) -> float:
    """Map a threshold from ``source``'s cosine scale onto ``to``'s, linearly through the two
    anchors, clipped to [-1, 1]. The identity when the scales are equal."""
    if to == source:
        return float(threshold)
    t = (threshold - source.unrelated) / (source.strong - source.unrelated)
    return float(np.clip(to.unrelated + t * (to.strong - to.unrelated), -1.0, 1.0))


def load_semantic_model(
    choice: SemanticChoice,
    *,
    device: str = "auto",
    clip_model: str = "ViT-B-32",
    clip_weights: str = "clip-vit-b-32-laion2b",
    clip_int8: bool = False,
) -> SemanticModel | None:
    """The one factory of semantic models (pipeline, catalog, benchmarks call it).

    ``auto``: CLIP when its weights are fetched, else ``lite``; ``clip``/``lite``: that model
    or a WeightsError naming the fetch command; ``random``: CLIP with random weights (tests and
    benchmarks); ``off``: None. ``clip_int8`` runs CLIP's visual tower int8 (CPU only; no
    effect on ``lite``). Imports are deferred: loading torch is the caller's choice.
    """
    if choice not in SEMANTIC_CHOICES:
        raise ValueError(f"semantic model must be one of {SEMANTIC_CHOICES}, got {choice!r}")
    if choice == "off":
        return None
    if choice == "random":
        from vision.clip_embedder import ClipEmbedder

        return ClipEmbedder(clip_model, random_weights=True, device=device, int8=clip_int8)
    from vision.weights import Manifest, resolve

    if choice in ("auto", "clip"):
        from vision.errors import WeightsError

        try:
            path = resolve(clip_weights)
        except WeightsError:
            if choice == "clip":
                raise
        else:
            from vision.clip_embedder import ClipEmbedder

            # resolve() verified the file: hand over its sha256 rather than hash 600 MB again
            sha = Manifest.load().get(clip_weights).sha256
            return ClipEmbedder(
                clip_model, weights=path, device=device, weights_sha256=sha, int8=clip_int8
            )
    from vision.lite import load_lite_model

    return load_lite_model(device=device)
