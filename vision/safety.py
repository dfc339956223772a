"""Brand-safety flags per keyframe, from the nudity detector's boxes and from CLIP prompts.

Two sources (see ``vision.safety_classes``):

- detector classes (``nudity``): every detection whose label is one of the class's labels
  becomes a flag with the detection's score, box and label;
- CLIP classes (violence, weapons, ...): the frame embedding is compared with every class
  prompt *and* the neutral prompts; a softmax over all of them, at CLIP's trained logit scale
  (100), turns cosines into probabilities, and a class's score is the probability mass on its
  own prompts. Class masses plus the neutral mass sum to 1 per frame.

Which flags are emitted: every detector hit, and every CLIP class whose score is at least
``floor`` (``DEFAULT_CLIP_FLAG_FLOOR``, deliberately low). Blocking is *not* decided here:
a rule's ``exclude.safety`` applies its own threshold, or the class's default
``SafetyClass.threshold``, to these scores, so one scan serves advertisers with different
tolerances and reports can show near misses.

Second opinion (``not_a_person``): on every frame that has a detector flag or a face box, the
frame embedding is also scored against ``NOT_A_PERSON_PROMPTS`` vs ``PERSON_PROMPTS`` (the same
softmax, these two groups only) and emitted as a ``SafetyFlag("not_a_person", p, "clip")``.
Why: NudeNet reads the smooth skin-coloured shapes of animation and animals as exposed bodies
(Big Buck Bunny's rabbit scores FEMALE_BREAST_EXPOSED 0.64); the semantic model knows a rabbit
or a bird. The detector's raw scores are kept unchanged; ``targeting.safety_policy`` decides.

Batch-first: N frames per call, one matrix product for all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from vision.safety_classes import (
    NEUTRAL_PROMPTS,
    NOT_A_PERSON,
    NOT_A_PERSON_PROMPTS,
    PERSON_PROMPTS,
    SAFETY_CLASSES,
    SafetyClass,
)
from vision.semantic import CLIP_SCALE, SemanticModel, check_embeddings
from vision.types import Detection, SafetyFlag

log = logging.getLogger(__name__)

CLIP_LOGIT_SCALE = 100.0
"""Temperature of the prompt softmax: the logit scale CLIP models are trained to (clamped 100)."""
DEFAULT_CLIP_FLAG_FLOOR = 0.05
"""CLIP classes scoring below this probability are not emitted (noise, never near a threshold)."""


def logit_scale_for(model: SemanticModel) -> float:
    """The prompt softmax's temperature for ``model``: CLIP's trained logit scale (100), scaled
    by how much wider the model's cosines spread than CLIP's, so a safety class needs the same
    *relative* margin over the neutral prompts under every model."""
    span = model.score_scale.strong - model.score_scale.unrelated
    return CLIP_LOGIT_SCALE * (CLIP_SCALE.strong - CLIP_SCALE.unrelated) / span


class SafetyScorer:
    """Scores brand-safety classes for batches of frames.

    ``embedder`` embeds the CLIP classes' prompts once, here; it may be None when no CLIP model
    is loaded, and then only detector classes are scored (``categories`` says which are).
    """

    def __init__(
        self,
        embedder: SemanticModel | None,
        classes: Sequence[SafetyClass] = SAFETY_CLASSES,
        *,
        neutral_prompts: Sequence[str] = NEUTRAL_PROMPTS,
        floor: float = DEFAULT_CLIP_FLAG_FLOOR,
        logit_scale: float = CLIP_LOGIT_SCALE,
        second_opinion: bool = True,
    ) -> None:
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor must be in 0..1, got {floor}")
        if not 0.0 < logit_scale <= 1000.0:
            raise ValueError(f"logit_scale must be in (0, 1000], got {logit_scale}")
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"safety class names must be unique, got {names}")
        self._floor = float(floor)
        self._scale = float(logit_scale)

        self._label_to_class: dict[str, str] = {}
        for c in classes:
            if c.source != "detector":
                continue
            if not c.labels:
                raise ValueError(f"detector safety class {c.name!r} lists no detector labels")
            for label in c.labels:
                if label in self._label_to_class:
                    raise ValueError(
                        f"detector label {label!r} is in both {self._label_to_class[label]!r} "
                        f"and {c.name!r}"
                    )
                self._label_to_class[label] = c.name

        clip_classes = [c for c in classes if c.source == "clip"]
        if embedder is None and clip_classes:
            log.info(
                "no CLIP model: safety classes %s are not scored",
                ", ".join(c.name for c in clip_classes),
            )
            clip_classes = []
        self._clip_names = tuple(c.name for c in clip_classes)
        self._embedder = embedder
        self._is_random = embedder is not None and not embedder.meaningful
        self._opinion: np.ndarray | None = None
        opinion_prompts = (
            list(NOT_A_PERSON_PROMPTS + PERSON_PROMPTS)
            if embedder is not None and second_opinion
            else []
        )
        self._prompts: tuple[str, ...] = ()
        self._matrix: np.ndarray | None = None
        self._membership: np.ndarray | None = None
        if clip_classes:
            assert embedder is not None
            prompts: list[str] = []
            owner: list[int] = []
            for ci, c in enumerate(clip_classes):
                if not c.prompts:
                    raise ValueError(f"CLIP safety class {c.name!r} lists no prompts")
                prompts.extend(c.prompts)
                owner.extend([ci] * len(c.prompts))
            if not neutral_prompts:
                raise ValueError("neutral_prompts must not be empty: they anchor the softmax")
            prompts.extend(neutral_prompts)
            owner.extend([len(clip_classes)] * len(neutral_prompts))
            dupes = sorted({p for p in prompts if prompts.count(p) > 1})
            if dupes:
                raise ValueError(f"a prompt may count for one class only; repeated: {dupes}")
            # one embed_texts call for the class, neutral and second-opinion prompts
            every = prompts + opinion_prompts
            mat = check_embeddings(embedder.embed_texts(every), embedder.dim, "prompt embeddings")
            if mat.shape[0] != len(every):
                raise ValueError(f"embed_texts returned {mat.shape[0]} rows for {len(every)}")
            if opinion_prompts:
                self._opinion = mat[len(prompts) :].astype(np.float64)
            mat = mat[: len(prompts)]
            self._prompts = tuple(prompts)
            self._matrix = mat.astype(np.float64)
            member = np.zeros((len(prompts), len(clip_classes) + 1), dtype=np.float64)
            member[np.arange(len(prompts)), owner] = 1.0
            self._membership = member
        elif opinion_prompts:
            assert embedder is not None
            self._opinion = check_embeddings(
                embedder.embed_texts(opinion_prompts), embedder.dim, "prompt embeddings"
            ).astype(np.float64)

    @classmethod
    def for_model(cls, model: SemanticModel | None) -> SafetyScorer:
        """The scorer a pipeline runs with ``model``: the shared neutral prompts plus the
        model's own ``neutral_texts``, at ``logit_scale_for(model)``; detector classes only
        without a model."""
        if model is None:
            return cls(None)
        return cls(
            model,
            neutral_prompts=NEUTRAL_PROMPTS + model.neutral_texts,
            logit_scale=logit_scale_for(model),
        )

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category this scorer can flag: detector classes, then the scored CLIP ones."""
        det = tuple(dict.fromkeys(self._label_to_class.values()))
        return det + self._clip_names

    @property
    def clip_categories(self) -> tuple[str, ...]:
        """The CLIP classes scored, in the column order of ``clip_scores``."""
        return self._clip_names

    @property
    def prompts(self) -> tuple[str, ...]:
        """Every prompt in the softmax: class prompts in class order, then neutral ones."""
        return self._prompts

    @property
    def meaningful(self) -> bool:
        """False when the embedder has random weights: CLIP scores are then mechanics only."""
        return not self._is_random

    def clip_scores(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probability mass per CLIP class and on the neutral prompts, for N frames.

        ``embeddings`` is (N, D), L2-normalized. Returns ``(classes (N, C), neutral (N,))``,
        float32 in 0..1, with ``classes.sum(1) + neutral == 1`` per frame (to float rounding).
        With no CLIP classes: ``(N, 0)`` zeros and all-ones neutral mass.
        """
        if self._matrix is None or self._membership is None:
            n = np.asarray(embeddings).shape[0] if np.asarray(embeddings).ndim == 2 else 0
            return np.zeros((n, 0), np.float32), np.ones(n, np.float32)
        emb = check_embeddings(embeddings, self._matrix.shape[1]).astype(np.float64)
        logits = self._scale * (emb @ self._matrix.T)  # (N, P)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        mass = np.clip(probs @ self._membership, 0.0, 1.0)  # (N, C + 1)
        return mass[:, :-1].astype(np.float32), mass[:, -1].astype(np.float32)

    def not_a_person(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) probability mass on ``NOT_A_PERSON_PROMPTS`` against ``PERSON_PROMPTS``."""
        if self._opinion is None:
            raise ValueError("this scorer has no second opinion (no embedder, or turned off)")
        emb = check_embeddings(embeddings, self._opinion.shape[1]).astype(np.float64)
        logits = self._scale * (emb @ self._opinion.T)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        mass = probs[:, : len(NOT_A_PERSON_PROMPTS)].sum(axis=1)
        return np.clip(mass, 0.0, 1.0).astype(np.float32)

    def flags(
        self, embeddings: np.ndarray | None, detections: Sequence[Sequence[Detection]]
    ) -> list[tuple[SafetyFlag, ...]]:
        """Safety flags for N frames: detector flags first (in detection order), then CLIP ones.

        ``detections[i]`` are frame i's boxes from any detector (only labels of detector
        safety classes count). ``embeddings`` is (N, D) or None when CLIP did not run (then
        only detector flags). CLIP flags have ``box=None`` and the class name as ``label``.
        Frames with a detector flag or a face also get the ``not_a_person`` second opinion
        (last) when an embedder is loaded.
        """
        n = len(detections)
        clip_mass: np.ndarray | None = None
        if embeddings is not None and self._matrix is not None:
            emb = check_embeddings(embeddings, self._matrix.shape[1])
            if emb.shape[0] != n:
                raise ValueError(
                    f"embeddings has {emb.shape[0]} rows but detections covers {n} frames"
                )
            clip_mass, _ = self.clip_scores(emb)
        opinion: np.ndarray | None = None
        if embeddings is not None and self._opinion is not None:
            opinion = self.not_a_person(np.asarray(embeddings))
            if opinion.shape[0] != n:
                raise ValueError(
                    f"embeddings has {opinion.shape[0]} rows but detections covers {n} frames"
                )
        out: list[tuple[SafetyFlag, ...]] = []
        for i, dets in enumerate(detections):
            frame_flags: list[SafetyFlag] = []
            for d in dets:
                category = self._label_to_class.get(d.label)
                if category is not None:
                    frame_flags.append(SafetyFlag(category, d.score, "detector", d.box, d.label))
            asks = bool(frame_flags) or any(d.kind == "face" for d in dets)
            if clip_mass is not None:
                for ci, name in enumerate(self._clip_names):
                    score = float(clip_mass[i, ci])
                    if score >= self._floor:
                        frame_flags.append(SafetyFlag(name, score, "clip", None, name))
            if opinion is not None and asks:
                score = float(opinion[i])
                frame_flags.append(SafetyFlag(NOT_A_PERSON, score, "clip", None, NOT_A_PERSON))
            out.append(tuple(frame_flags))
        return out
