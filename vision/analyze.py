"""``analyze(frames) -> FrameFacts``: every model, batched, over a stream of keyframes.

The analyzer owns no model-loading policy (that is ``vision.pipeline``): it takes whichever
components exist and runs each one once per batch, so N frames cost one CLIP forward pass, one
detector call and one logo-matching pass per batch instead of N of each. Frames stream through:
a long video never sits in memory, only ``batch_size`` keyframes at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vision.types import ConceptScore, Detection, Frame, FrameFacts, LogoMatch, SafetyFlag

DEFAULT_BATCH_SIZE = 16
"""Keyframes per model call: enough to fill a CPU's cores, small enough to bound latency."""
DEFAULT_TOP_CONCEPTS = 5
"""Content categories kept per keyframe for display (targeting scores all it needs itself)."""


class ImageEmbedder(Protocol):
    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


class BoxDetector(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


class LogoFinder(Protocol):
    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]: ...


class ConceptRanker(Protocol):
    def top_k(self, embeddings: np.ndarray, k: int) -> list[list[ConceptScore]]: ...


class SafetyFlagger(Protocol):
    def flags(
        self, embeddings: np.ndarray | None, detections: Sequence[Sequence[Detection]]
    ) -> list[tuple[SafetyFlag, ...]]: ...


@dataclass(frozen=True)
class Analyzer:
    """Runs the components it is given; a missing one (None) contributes nothing.

    ``clip`` embeds frames (needed by ``concepts`` and the CLIP part of ``safety``);
    ``detector`` finds faces and safety boxes; ``logos`` matches reference logos.
    """

    clip: ImageEmbedder | None = None
    detector: BoxDetector | None = None
    logos: LogoFinder | None = None
    concepts: ConceptRanker | None = None
    safety: SafetyFlagger | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    top_concepts: int = DEFAULT_TOP_CONCEPTS

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.concepts is not None and self.clip is None:
            raise ValueError("concept ranking needs CLIP embeddings: pass clip= as well")

    def analyze(self, frames: Iterable[Frame]) -> Iterator[FrameFacts]:
        """Yield one FrameFacts per frame, in order, computed a batch at a time."""
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) >= self.batch_size:
                yield from self.analyze_batch(batch)
                batch = []
        if batch:
            yield from self.analyze_batch(batch)

    def analyze_batch(self, frames: Sequence[Frame]) -> list[FrameFacts]:
        """All models over one batch of frames; the unit the gRPC micro-batcher calls."""
        if not frames:
            return []
        images = [f.image for f in frames]
        n = len(frames)
        embeddings = self.clip.embed_images(images) if self.clip is not None else None
        detections = self.detector.detect(images) if self.detector is not None else [[]] * n
        logos = self.logos.match_many(images) if self.logos is not None else [[]] * n
        concepts: list[list[ConceptScore]] = [[]] * n
        if self.concepts is not None and embeddings is not None:
            concepts = self.concepts.top_k(embeddings, self.top_concepts)
        safety: list[tuple[SafetyFlag, ...]] = [()] * n
        if self.safety is not None:
            safety = self.safety.flags(embeddings, detections)
        return [
            FrameFacts(
                media_id=f.media_id,
                t=f.t,
                embedding=None if embeddings is None else embeddings[i],
                detections=tuple(detections[i]),
                logos=tuple(logos[i]),
                safety=tuple(safety[i]),
                concepts=tuple(concepts[i]),
                reason=f.reason,
                width=f.width,
                height=f.height,
            )
            for i, f in enumerate(frames)
        ]
