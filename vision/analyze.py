"""``analyze(frames) -> FrameFacts``: every model, batched, over a stream of keyframes.

The analyzer owns no model-loading policy (that is ``vision.pipeline``): it takes whichever
components exist and runs each one once per batch, so N frames cost one CLIP forward pass, one
detector call and one logo-matching pass per batch instead of N of each. Frames stream through:
a long video never sits in memory, only ``batch_size`` keyframes at a time.

OCR is the one component that does not read every keyframe: it costs several times a CLIP pass
on a CPU, and on-screen text stays up for seconds. It reads every still image, a video's first
keyframe, every shot cut, and otherwise the first keyframe at least ``ocr_interval_s`` of media
time after the last read (``ocr_due``). A keyframe in between carries the text of the last read
of its media, which is of the same shot (a cut is always read), so a text fact holds across
the keyframes of a shot instead of flickering on and off with the reading rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vision.semantic import SemanticModel
from vision.types import (
    ConceptScore,
    Detection,
    Frame,
    FrameFacts,
    LogoMatch,
    SafetyFlag,
    TextRead,
)

DEFAULT_BATCH_SIZE = 16
"""Keyframes per model call: enough to fill a CPU's cores, small enough to bound latency."""
DEFAULT_TOP_CONCEPTS = 5
"""Content categories kept per keyframe for display (targeting scores all it needs itself)."""
DEFAULT_OCR_INTERVAL_S = 1.0
"""Most seconds of media time between two OCR reads of one shot of a video: every second
keyframe at the default 0.5 s keyframe interval (cuts and still images are always read)."""

TextMemory = dict[str, tuple[float, tuple[TextRead, ...]]]
"""Per media id: the time (s) of its last OCR read and what that read found. A caller that
analyzes a stream in batches of its own (the batch scan's pipeline, whose batches mix media)
passes one across its ``analyze_batch`` calls, so the OCR schedule, and with it every text fact,
does not depend on where the batches happen to be cut."""


DEFAULT_TEXT_BLEND = 0.35
"""Largest weight of the read text's embedding in a frame's embedding (reached at
``TEXT_FULL_WEIGHT_CHARS`` characters of confident text): enough for a banner or a page of text
to bring its categories, too little for a word or two to override what the picture shows."""
TEXT_FULL_WEIGHT_CHARS = 40
"""Characters of confident text at which the read text gets its full ``text_blend`` weight."""
TEXT_MIN_SCORE = 0.8
"""OCR lines below this confidence are left out of the blend (gibberish reads of textures)."""


def blend_read_text(
    embeddings: np.ndarray,
    text: Sequence[Sequence[TextRead]],
    model: SemanticModel,
    weight: float = DEFAULT_TEXT_BLEND,
) -> np.ndarray:
    """Frame embeddings moved toward the embedding of the text read on them, renormalized.

    Why: a page of text or a product banner says what a frame is about where the pixels say
    little, and the semantic model embeds words and pictures in one space, so IAB categories,
    concepts and prompt safety all see the words. The weight grows with the amount of
    confident text (lines scoring >= TEXT_MIN_SCORE), up to ``weight``; frames without such
    text keep their image embedding exactly. Each distinct read is embedded once per batch.
    """
    lines = [
        " ".join(r.text for r in reads if r.score >= TEXT_MIN_SCORE and len(r.text) >= 3)
        for reads in text
    ]
    distinct = sorted({line for line in lines if line})
    if not distinct:
        return embeddings
    vectors = dict(zip(distinct, model.embed_texts(distinct), strict=True))
    out = embeddings.copy()
    for i, line in enumerate(lines):
        if line:
            a = weight * min(1.0, len(line) / TEXT_FULL_WEIGHT_CHARS)
            v = (1.0 - a) * embeddings[i] + a * vectors[line]
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


class BoxDetector(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


class LogoFinder(Protocol):
    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]: ...


class ConceptRanker(Protocol):
    def top_k(self, embeddings: np.ndarray, k: int) -> list[list[ConceptScore]]: ...


class TextFinder(Protocol):
    def read_many(self, images: Sequence[np.ndarray]) -> list[list[TextRead]]: ...


class SafetyFlagger(Protocol):
    def flags(
        self, embeddings: np.ndarray | None, detections: Sequence[Sequence[Detection]]
    ) -> list[tuple[SafetyFlag, ...]]: ...


def ocr_due(frame: Frame, last_read_t: float | None, interval_s: float) -> bool:
    """Whether OCR reads ``frame``: a still image, a shot cut, the first keyframe of its media
    (``last_read_t`` None), or one at least ``interval_s`` seconds after the last read."""
    return (
        frame.reason in ("image", "cut")
        or last_read_t is None
        or frame.t - last_read_t >= interval_s
    )


@dataclass(frozen=True)
class Analyzer:
    """Runs the components it is given; a missing one (None) contributes nothing.

    ``semantic`` embeds frames (``vision.semantic``; needed by ``concepts`` and the prompt part
    of ``safety``);
    ``detector`` finds faces and safety boxes; ``logos`` matches reference logos; ``ocr``
    reads on-screen text on the keyframes ``ocr_due`` picks, ``ocr_interval_s`` (s, >= 0)
    apart at most within a shot (see the module docstring). ``text_blend`` (0..1, 0 = off) is
    how much what OCR read moves a frame's embedding (``blend_read_text``).
    """

    semantic: SemanticModel | None = None
    detector: BoxDetector | None = None
    logos: LogoFinder | None = None
    concepts: ConceptRanker | None = None
    safety: SafetyFlagger | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    top_concepts: int = DEFAULT_TOP_CONCEPTS
    ocr: TextFinder | None = None
    ocr_interval_s: float = DEFAULT_OCR_INTERVAL_S
    text_blend: float = DEFAULT_TEXT_BLEND

    def __post_init__(self) -> None:
        if not (math.isfinite(self.text_blend) and 0.0 <= self.text_blend <= 1.0):
            raise ValueError(f"text_blend must be in 0..1, got {self.text_blend!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.ocr_interval_s) and self.ocr_interval_s >= 0):
            raise ValueError(
                f"ocr_interval_s must be a finite time >= 0 s, got {self.ocr_interval_s!r}"
            )
        if self.concepts is not None and self.semantic is None:
            raise ValueError("concept ranking needs image embeddings: pass semantic= as well")

    def analyze(self, frames: Iterable[Frame]) -> Iterator[FrameFacts]:
        """Yield one FrameFacts per frame, in order, computed a batch at a time.

        The OCR schedule spans the whole stream: its memory carries across batches."""
        batch: list[Frame] = []
        memory: TextMemory = {}
        for frame in frames:
            batch.append(frame)
            if len(batch) >= self.batch_size:
                yield from self._analyze(batch, memory)
                batch = []
        if batch:
            yield from self._analyze(batch, memory)

    def analyze_batch(
        self, frames: Sequence[Frame], memory: TextMemory | None = None
    ) -> list[FrameFacts]:
        """All models over one batch of frames; the unit the gRPC micro-batcher calls.

        ``memory``: the OCR schedule of the streams these frames continue (updated here). None:
        the batch is its own stream, the first keyframe of each media in it is read."""
        return self._analyze(frames, {} if memory is None else memory)

    def _analyze(self, frames: Sequence[Frame], memory: TextMemory) -> list[FrameFacts]:
        if not frames:
            return []
        images = [f.image for f in frames]
        n = len(frames)
        embeddings = self.semantic.embed_images(images) if self.semantic is not None else None
        detections = self.detector.detect(images) if self.detector is not None else [[]] * n
        logos = self.logos.match_many(images) if self.logos is not None else [[]] * n
        text = self._read_text(frames, memory)
        if embeddings is not None and self.semantic is not None and self.text_blend > 0:
            embeddings = blend_read_text(embeddings, text, self.semantic, self.text_blend)
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
                text=text[i],
                reason=f.reason,
                width=f.width,
                height=f.height,
            )
            for i, f in enumerate(frames)
        ]

    def _read_text(self, frames: Sequence[Frame], memory: TextMemory) -> list[tuple[TextRead, ...]]:
        """OCR over the due frames in one batched call; the others carry their media's last
        read (``memory``, updated here)."""
        if self.ocr is None:
            return [()] * len(frames)
        last_t = {media: t for media, (t, _) in memory.items()}
        due: list[int] = []
        for i, f in enumerate(frames):
            if ocr_due(f, last_t.get(f.media_id), self.ocr_interval_s):
                due.append(i)
                last_t[f.media_id] = f.t
        reads = self.ocr.read_many([frames[i].image for i in due]) if due else []
        fresh = dict(zip(due, reads, strict=True))
        out: list[tuple[TextRead, ...]] = []
        for i, f in enumerate(frames):
            if i in fresh:
                memory[f.media_id] = (f.t, tuple(fresh[i]))
            out.append(memory[f.media_id][1])  # a media's first frame is always due
        return out
