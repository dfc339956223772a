"""The trained YOLO logo detector, loaded against the brands the rules name.

Why a class of its own around :class:`vision.detectors.Detector`: a logo detector's classes
are brand indices, meaningful only for the brands it was trained for. Loading reads the card
beside the weights (:mod:`vision.logo_training.registry`), checks the weights' sha256 against
it, and refuses a detector whose brands are not exactly the rules' brands, with a message
naming both lists and the command that retrains it. A detector trained for the same names
but other reference images (a logo was replaced) still loads, with a warning: its boxes are
for the old logo, and the matcher's verification (:mod:`vision.logo_fusion`) is what keeps
its hits honest until it is retrained.

``match_many`` has the matcher's shape (``list[list[LogoMatch]]``, ``method="detector"``),
so the pipeline can run either, or both through :class:`vision.logo_fusion.LogoFinder`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vision.brands import BrandRefs
from vision.detectors import DEFAULT_IOU, Detector, kind_by_label
from vision.errors import ModelError
from vision.logo_fusion import DEFAULT_LOGO_CONF
from vision.logo_training.registry import (
    RETRAIN_HINT,
    brands_fingerprint,
    check_detector_card,
)
from vision.types import LogoMatch

log = logging.getLogger(__name__)


class LogoDetector:
    """A trained logo detector checked against a set of brands (see the module docstring).

    ``brands``: the rules' brands, as loaded :class:`BrandRefs` (names and fingerprint are
    checked) or bare names (names only). ``imgsz`` None runs at the size it was trained at.
    Raises ModelError for missing/corrupt weights or card, a sha256 that does not match the
    card, or brands other than the card's.
    """

    def __init__(
        self,
        weights: Path,
        brands: Sequence[BrandRefs] | Sequence[str],
        *,
        conf: float = DEFAULT_LOGO_CONF,
        iou: float = DEFAULT_IOU,
        imgsz: int | None = None,
        device: str = "auto",
    ) -> None:
        weights = Path(weights)
        names = [b if isinstance(b, str) else b.brand for b in brands]
        card = check_detector_card(weights, names)
        hint = RETRAIN_HINT.format(weights=weights)
        refs = [b for b in brands if isinstance(b, BrandRefs)]
        if refs and len(refs) == len(names):
            by_class = {r.brand: r for r in refs}
            if brands_fingerprint([by_class[c] for c in card.classes]) != card.brands_fingerprint:
                log.warning(
                    "logo detector %s was trained on other reference images of these brands "
                    "(a logo was added or replaced); its hits are verified by the matcher, "
                    "but %s",
                    weights.name,
                    hint,
                )
        labels = dict(enumerate(card.classes))
        self._detector = Detector(
            weights,
            labels=labels,
            kind_of=kind_by_label({c: "logo" for c in card.classes}, "logo"),
            conf=conf,
            iou=iou,
            imgsz=imgsz or card.imgsz,
            device=device,
            fetch_hint=hint,
        )
        model_classes = tuple(
            self._detector.model_names[i] for i in sorted(self._detector.model_names)
        )
        if model_classes != card.classes:
            raise ModelError(
                f"logo detector {weights.name}: the model's classes [{', '.join(model_classes)}] "
                f"are not its card's [{', '.join(card.classes)}]; {hint}"
            )
        self.card = card
        self.weights = self._detector.weights

    @property
    def brands(self) -> tuple[str, ...]:
        """Brand names in class order."""
        return self.card.classes

    @property
    def device_name(self) -> str:
        return self._detector.device_name

    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]:
        """Logo candidates per (H, W, 3) uint8 RGB image: ``LogoMatch`` with
        ``method="detector"``, normalized xyxy boxes, best first. ValueError on a bad array."""
        return [
            [LogoMatch(d.label, d.score, d.box, method="detector") for d in dets]
            for dets in self._detector.detect(images)
        ]

    def match(self, image: np.ndarray) -> list[LogoMatch]:
        """:meth:`match_many` of one image."""
        return self.match_many([image])[0]

    def __repr__(self) -> str:
        return f"LogoDetector({self.weights.name}, brands={list(self.brands)})"
