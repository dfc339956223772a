"""One logo answer from two finders: the trained detector and the reference-feature matcher.

Why both: the matcher (:mod:`vision.logo_matcher`) is exact about *which* logo it saw and
where its outline is, but misses small, blurred or warped logos and costs 0.5-1.2 s on a busy
frame; the detector (:mod:`vision.logo_detector`) finds small and warped logos in tens of ms
but, trained on synthetic frames, also fires on look-alikes. Fused:

- **both** see the same brand at the same place (IoU >= ``fuse_iou``): one ``FusedLogoMatch``
  with the **matcher's box** (the projected outline of the reference, tight and exact for a
  flat logo, where the detector's box is a regression that can be a few px off), the higher of
  the two scores, ``method="features"`` and ``sources=("features", "detector")``;
- **matcher only**: kept as it is (the matcher does not produce chance matches, see its
  docstring);
- **detector only**: *verified* by running the matcher on the detection's padded crop,
  upscaled so a small logo has enough pixels for features. A same-brand match there scoring
  >= ``verify_min_score`` keeps it (as a fused match); otherwise it is dropped, unless its
  detector score is >= ``keep_unverified_above`` (None, the default: never), for logos the
  matcher cannot confirm at all (too small, too blurred) when the detector is trusted.

``matcher_on_detections_only``: the matcher runs only on the detector's crops, never on the
whole frame, which cuts its cost on busy frames to a few small crops; the price is that a logo
the detector misses is missed (the matcher cannot rescue it).

Boxes are normalized ``xyxy`` of the frame, as everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from vision.brands import BrandRefs
from vision.logo_matcher import LogoMatcher
from vision.types import Box, FusedLogoMatch, LogoMatch, box_iou, check_box, check_rgb_batch

DEFAULT_LOGO_CONF = 0.25
"""Lowest detector score (0..1) kept as a logo candidate; fusion verifies what it keeps."""

DEFAULT_FUSE_IOU = 0.3
"""Boxes of one brand overlapping at least this (IoU) are one logo seen by both finders."""

DEFAULT_VERIFY_MIN_SCORE = 0.3
"""Lowest matcher score (0..1) on a detection's crop that confirms the detection."""

DEFAULT_CROP_PAD = 0.25
"""A detection's crop is its box grown by this fraction of its width/height on each side: the
detector's box may cut the logo's edge, and features near the edge need context."""

MIN_CROP_PAD_PX = 8
"""...and by at least this many frame pixels on each side."""

CROP_MIN_SIDE = 192
"""Crops are upscaled so their longer side is at least this (px): a logo 50 px wide on screen
has too few pixels for SIFT's first octaves. Measured on bus/zidane with acme and rival at
7-20% of the frame width, blurred and JPEG'd: the crop alone finds 11/16 (no upscale), 12/16
(192 px), 10-11/16 (384-640 px: upscaled blur only adds smooth pixels), the full frame 8/16."""

MAX_CROP_UPSCALE = 3.0
"""...but by at most this factor (beyond it the upscale invents nothing more)."""


class LogoCandidates(Protocol):
    """What fusion needs of a detector: its brands and boxes per image
    (:class:`vision.logo_detector.LogoDetector` is the one implementation)."""

    @property
    def brands(self) -> tuple[str, ...]: ...

    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]: ...


@dataclass(frozen=True)
class FusionConfig:
    """Thresholds of :class:`FusedLogoFinder` (see the module docstring); IoU and scores 0..1."""

    fuse_iou: float = DEFAULT_FUSE_IOU
    verify_min_score: float = DEFAULT_VERIFY_MIN_SCORE
    keep_unverified_above: float | None = None
    crop_pad: float = DEFAULT_CROP_PAD
    matcher_on_detections_only: bool = False

    def __post_init__(self) -> None:
        for name in ("fuse_iou", "verify_min_score"):
            v = getattr(self, name)
            if not (0.0 < v <= 1.0):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        k = self.keep_unverified_above
        if k is not None and not (0.0 < k <= 1.0):
            raise ValueError(f"keep_unverified_above must be in (0, 1] or None, got {k!r}")
        if not (0.0 <= self.crop_pad <= 2.0):
            raise ValueError(f"crop_pad must be in 0..2, got {self.crop_pad!r}")


VerifyMode = Literal["matcher", "none"]
VERIFY_MODES: tuple[VerifyMode, ...] = ("matcher", "none")
"""How a detector-only hit is kept: ``matcher`` (confirmed on its crop by the reference
matcher, score >= ``verify_threshold``) or ``none`` (kept as the detector scored it)."""


@dataclass(frozen=True)
class DetectorSettings:
    """Which trained detector joins the matcher and how its hits are kept: what a rules
    directory's ``logos.yaml`` and ``--logo-detector`` say (``targeting.logos_config``).

    ``min_score``: lowest detector score kept as a candidate (0..1]; ``verify``: see
    ``VERIFY_MODES``; ``verify_threshold``: the matcher score on the crop that confirms it;
    ``keep_above`` (verify: matcher): a detection the matcher cannot confirm is kept anyway
    when the detector scores it at least this (None: never). The matcher cannot confirm logos
    under ~10% of the frame width at all; ``keep_above: 0.7`` doubled recall at precision
    1.00 on the logo bench (BENCHMARKS.md).
    """

    weights: Path
    min_score: float = DEFAULT_LOGO_CONF
    verify: VerifyMode = "matcher"
    verify_threshold: float = DEFAULT_VERIFY_MIN_SCORE
    keep_above: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_score", "verify_threshold", "keep_above"):
            v = getattr(self, name)
            if name == "keep_above" and v is None:
                continue
            if isinstance(v, bool) or not (0.0 < v <= 1.0):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}, got {self.verify!r}")

    def fusion(self) -> FusionConfig:
        """The fusion thresholds these settings mean: ``verify: none`` keeps every detection
        the detector kept (``keep_unverified_above`` = ``min_score``)."""
        return FusionConfig(
            verify_min_score=self.verify_threshold,
            keep_unverified_above=self.min_score if self.verify == "none" else self.keep_above,
        )


def build_fused_finder(
    matcher: LogoMatcher,
    brands: Sequence[BrandRefs],
    settings: DetectorSettings,
    *,
    device: str = "auto",
) -> FusedLogoFinder:
    """Load ``settings.weights`` for ``brands`` (the matcher's) and fuse it with ``matcher``.
    ModelError when the detector's card does not fit the brands (naming both lists)."""
    from vision.logo_detector import LogoDetector

    detector = LogoDetector(settings.weights, brands, conf=settings.min_score, device=device)
    return FusedLogoFinder(matcher, detector, settings.fusion())


def crop_for(
    image: np.ndarray, box: Box, pad: float
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The padded, upscaled crop of ``box`` and its frame-pixel window ``(x0, y0, x1, y1)``."""
    h, w = image.shape[:2]
    bw, bh = (box[2] - box[0]) * w, (box[3] - box[1]) * h
    px, py = max(MIN_CROP_PAD_PX, pad * bw), max(MIN_CROP_PAD_PX, pad * bh)
    x0 = max(0, math.floor(box[0] * w - px))
    y0 = max(0, math.floor(box[1] * h - py))
    x1 = min(w, math.ceil(box[2] * w + px))
    y1 = min(h, math.ceil(box[3] * h + py))
    crop = image[y0:y1, x0:x1]
    side = max(x1 - x0, y1 - y0, 1)
    s = min(MAX_CROP_UPSCALE, CROP_MIN_SIDE / side)
    if s > 1.0:
        size = (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop), (x0, y0, x1, y1)


def _to_frame(box: Box, window: tuple[int, int, int, int], w: int, h: int) -> Box:
    """A box normalized to a crop -> normalized to the frame the crop was cut from."""
    x0, y0, x1, y1 = window
    cw, ch = x1 - x0, y1 - y0
    return check_box(
        (
            (x0 + box[0] * cw) / w,
            (y0 + box[1] * ch) / h,
            (x0 + box[2] * cw) / w,
            (y0 + box[3] * ch) / h,
        )
    )


def _both(feature: LogoMatch, detection: LogoMatch) -> FusedLogoMatch:
    return FusedLogoMatch(
        feature.brand,
        max(feature.score, detection.score),
        feature.box,
        method="features",
        sources=("features", "detector"),
    )


class FusedLogoFinder:
    """The detector and the matcher, fused (see the module docstring). It is a
    ``vision.analyze.LogoFinder`` (``match_many``), so the Analyzer takes it as it takes the
    matcher.

    ``detector`` None: the matcher alone (what runs when the rules name no detector). The two
    must know the same brands. ``match_many`` has the matcher's shape, so it drops in where
    the matcher was used.
    """

    def __init__(
        self,
        matcher: LogoMatcher,
        detector: LogoCandidates | None = None,
        config: FusionConfig = FusionConfig(),
    ) -> None:
        if detector is not None and sorted(detector.brands) != sorted(matcher.brands):
            raise ValueError(
                f"detector brands {list(detector.brands)} differ from the matcher's "
                f"{list(matcher.brands)}"
            )
        if detector is None and config.matcher_on_detections_only:
            raise ValueError("matcher_on_detections_only needs a detector")
        self.matcher = matcher
        self.detector = detector
        self.config = config

    @property
    def brands(self) -> tuple[str, ...]:
        return self.matcher.brands

    def match(self, image: np.ndarray) -> list[LogoMatch]:
        """:meth:`match_many` of one image."""
        return self.match_many([image])[0]

    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]:
        """Fused logo matches per (H, W, 3) uint8 RGB image, best first, input order."""
        checked = check_rgb_batch(images)
        if self.detector is None:
            return self.matcher.match_many(checked)
        detections = self.detector.match_many(checked)
        if self.config.matcher_on_detections_only:
            crops = self._crop_matches(checked, detections, [range(len(d)) for d in detections])
            features = [_dedupe([m for ms in per.values() for m in ms]) for per in crops]
        else:
            features = self.matcher.match_many(checked)
            pending = [self._unconfirmed(f, d) for f, d in zip(features, detections, strict=True)]
            crops = self._crop_matches(checked, detections, pending)
        return [self._fuse(f, d, c) for f, d, c in zip(features, detections, crops, strict=True)]

    def _unconfirmed(self, features: list[LogoMatch], detections: list[LogoMatch]) -> list[int]:
        """Indices of detections that no same-brand frame match overlaps: those need a crop."""
        t = self.config.fuse_iou
        return [
            k
            for k, d in enumerate(detections)
            if not any(f.brand == d.brand and box_iou(f.box, d.box) >= t for f in features)
        ]

    def _crop_matches(
        self,
        images: list[np.ndarray],
        detections: list[list[LogoMatch]],
        which: Sequence[Sequence[int]],
    ) -> list[dict[int, list[LogoMatch]]]:
        """Per image, for the detections ``which`` names: the matcher's matches on the
        detection's padded crop, with boxes in frame coordinates. One batched matcher call."""
        jobs: list[tuple[int, int, tuple[int, int, int, int]]] = []
        crops: list[np.ndarray] = []
        for i, (image, dets) in enumerate(zip(images, detections, strict=True)):
            for k in which[i]:
                crop, window = crop_for(image, dets[k].box, self.config.crop_pad)
                jobs.append((i, k, window))
                crops.append(crop)
        found = self.matcher.match_many(crops) if crops else []
        out: list[dict[int, list[LogoMatch]]] = [{} for _ in images]
        for (i, k, window), matches in zip(jobs, found, strict=True):
            h, w = images[i].shape[:2]
            out[i][k] = [
                LogoMatch(m.brand, m.score, _to_frame(m.box, window, w, h), method="features")
                for m in matches
            ]
        return out

    def _fuse(
        self,
        features: list[LogoMatch],
        detections: list[LogoMatch],
        crop_matches: dict[int, list[LogoMatch]],
    ) -> list[LogoMatch]:
        cfg = self.config
        out: list[LogoMatch] = []
        used: set[int] = set()
        for f in sorted(features, key=lambda m: m.score, reverse=True):
            best, best_iou = -1, cfg.fuse_iou
            for k, d in enumerate(detections):
                iou = box_iou(f.box, d.box)
                if k not in used and d.brand == f.brand and iou >= best_iou:
                    best, best_iou = k, iou
            if best >= 0:
                used.add(best)
                out.append(_both(f, detections[best]))
            else:
                out.append(f)
        for k, d in enumerate(detections):
            if k in used:
                continue
            if any(o.brand == d.brand and box_iou(o.box, d.box) >= cfg.fuse_iou for o in out):
                continue  # another detection of this logo was already fused
            confirm = [
                m
                for m in crop_matches.get(k, [])
                if m.brand == d.brand
                and m.score >= cfg.verify_min_score
                and box_iou(m.box, d.box) >= cfg.fuse_iou
            ]
            if confirm:
                out.append(_both(max(confirm, key=lambda m: m.score), d))
            elif cfg.keep_unverified_above is not None and d.score >= cfg.keep_unverified_above:
                out.append(d)
        out.sort(key=lambda m: m.score, reverse=True)
        return out


def _dedupe(matches: list[LogoMatch]) -> list[LogoMatch]:
    """Crop matches of overlapping detections can find one logo twice: keep the best."""
    kept: list[LogoMatch] = []
    for m in sorted(matches, key=lambda m: m.score, reverse=True):
        if not any(k.brand == m.brand and box_iou(k.box, m.box) >= DEFAULT_FUSE_IOU for k in kept):
            kept.append(m)
    return kept


__all__ = [
    "VERIFY_MODES",
    "DetectorSettings",
    "VerifyMode",
    "build_fused_finder",
    "DEFAULT_CROP_PAD",
    "DEFAULT_LOGO_CONF",
    "DEFAULT_FUSE_IOU",
    "DEFAULT_VERIFY_MIN_SCORE",
    "FusionConfig",
    "LogoCandidates",
    "FusedLogoFinder",
    "crop_for",
]
