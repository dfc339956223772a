"""The core data types shared by every package: small, frozen, validated on construction.

Coordinates: boxes are ``(x0, y0, x1, y1)`` normalized to 0..1 of the frame's width and height,
origin top-left (``xyxy``). Times are seconds from the start of the media, as floats.
Images are ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype ``uint8``, **RGB** order.
Embeddings are ``numpy.ndarray`` of shape ``(D,)``, dtype ``float32``, L2-normalized.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Box = tuple[float, float, float, float]
"""Normalized ``(x0, y0, x1, y1)``, 0..1, x0 <= x1 and y0 <= y1."""

DetectionKind = Literal["face", "safety", "logo", "object"]
LogoMethod = Literal["features", "detector", "clip"]
"""How a logo was found: reference-feature matching, the trained detector, or CLIP on a crop."""
LOGO_METHODS: tuple[LogoMethod, ...] = ("features", "detector", "clip")
LOGO_SOURCE_NAMES: dict[str, str] = {"features": "matcher", "detector": "detector", "clip": "clip"}
"""A LogoMatch ``method`` -> the finder's name in reasons and reports (``features`` is the
reference matcher, ``vision.logo_matcher``)."""
KeyframeReason = Literal["interval", "cut", "image"]


def _check_score(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be in 0..1, got {value!r}")


def check_box(box: Box) -> Box:
    """Validate a normalized xyxy box and return it as a tuple of floats.

    Values a hair outside 0..1 (float noise from a model) are clipped; anything else is an error.
    """
    if len(box) != 4:
        raise ValueError(f"box must have 4 values (x0, y0, x1, y1), got {len(box)}")
    x0, y0, x1, y1 = (float(v) for v in box)
    eps = 1e-3
    if any(math.isnan(v) or v < -eps or v > 1 + eps for v in (x0, y0, x1, y1)):
        raise ValueError(f"box must be normalized to 0..1, got {box!r}")
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box must have x0 <= x1 and y0 <= y1, got {box!r}")
    clip = lambda v: min(1.0, max(0.0, v))  # noqa: E731
    return (clip(x0), clip(y0), clip(x1), clip(y1))


def box_area(box: Box) -> float:
    """Area of a normalized box as a fraction of the frame (0..1)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two normalized xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def check_rgb_image(image: object, name: str = "image") -> np.ndarray:
    """Return ``image`` if it is a non-empty (H, W, 3) uint8 array, else raise ValueError.

    The message names ``name`` and says which rule broke (shape, dtype, emptiness).
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{name} must be an (H, W, 3) RGB array, got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} must be non-empty, got {image.shape}")
    return image


def check_rgb_batch(images: Sequence[object]) -> list[np.ndarray]:
    """``check_rgb_image`` on every item, failing with the item's index and what it was, so
    the caller of a batched model call knows which of its N images is wrong."""
    out: list[np.ndarray] = []
    for i, image in enumerate(images):
        try:
            out.append(check_rgb_image(image, f"images[{i}]"))
        except ValueError:
            desc = (
                f"{image.shape} {image.dtype}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise ValueError(
                f"images[{i}] must be an (H, W, 3) uint8 RGB array, got {desc}"
            ) from None
    return out


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded picture of a media, at a known time.

    ``image`` is (H, W, 3) uint8 RGB. ``t`` is the presentation time in seconds (0 for an image).
    ``reason`` says why this frame was kept: a fixed-interval sample, a shot cut, or a still image.
    """

    media_id: str
    t: float
    image: np.ndarray
    index: int = 0
    reason: KeyframeReason = "interval"

    def __post_init__(self) -> None:
        check_rgb_image(self.image, "Frame.image")
        if not math.isfinite(self.t) or self.t < 0:
            raise ValueError(f"Frame.t must be a finite time >= 0 s, got {self.t!r}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Detection:
    """One box from a detector: ``kind`` is the family, ``label`` the class name in it."""

    kind: DetectionKind
    label: str
    score: float
    box: Box

    def __post_init__(self) -> None:
        _check_score("Detection.score", self.score)
        object.__setattr__(self, "box", check_box(self.box))

    @property
    def area(self) -> float:
        return box_area(self.box)


@dataclass(frozen=True)
class LogoMatch:
    """A brand's logo found in a frame. ``method`` says which matcher found it."""

    brand: str
    score: float
    box: Box
    method: LogoMethod = "features"

    def __post_init__(self) -> None:
        _check_score("LogoMatch.score", self.score)
        object.__setattr__(self, "box", check_box(self.box))


@dataclass(frozen=True)
class FusedLogoMatch(LogoMatch):
    """A logo that several finders saw (``vision.logo_fusion``): ``method`` is the finder
    whose ``box`` this is, ``sources`` every finder that saw it, ``method`` first.

    A subclass rather than a new LogoMatch field so that the wire contract (``LogoMatch`` in
    ``common.proto``) is unchanged until it grows a ``sources`` field; everything that takes
    a LogoMatch takes this one."""

    sources: tuple[LogoMethod, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            len(self.sources) < 2
            or self.sources[0] != self.method
            or not set(self.sources) <= set(LOGO_METHODS)
            or len(set(self.sources)) != len(self.sources)
        ):
            raise ValueError(
                f"FusedLogoMatch.sources must name 2+ distinct methods of {LOGO_METHODS}, "
                f"method {self.method!r} first, got {self.sources!r}"
            )


@dataclass(frozen=True)
class ConceptScore:
    """How well a frame fits a named concept (an IAB category, a prompt): cosine similarity."""

    id: str
    name: str
    score: float


@dataclass(frozen=True)
class SafetyFlag:
    """A brand-safety signal: ``category`` (e.g. ``nudity``, ``violence``), its score, its source.

    ``source`` is ``detector`` (a box from the safety detector, ``box`` set) or ``clip``
    (a prompt-based class scored on the whole frame, ``box`` is None).
    """

    category: str
    score: float
    source: Literal["detector", "clip"]
    box: Box | None = None
    label: str = ""

    def __post_init__(self) -> None:
        _check_score("SafetyFlag.score", self.score)
        if self.box is not None:
            object.__setattr__(self, "box", check_box(self.box))


@dataclass(frozen=True)
class TextRead:
    """A line of on-screen text read by OCR: the ``text`` as read, the recognizer's ``score``
    (0..1, mean character confidence) and where it stands (normalized xyxy ``box``)."""

    text: str
    score: float
    box: Box

    def __post_init__(self) -> None:
        _check_score("TextRead.score", self.score)
        object.__setattr__(self, "box", check_box(self.box))


@dataclass(frozen=True, eq=False)
class FrameFacts:
    """Everything the models saw in one keyframe: the input to targeting.

    ``embedding`` is the frame's L2-normalized CLIP image embedding (D,) float32, or None when
    CLIP is not run. ``concepts`` holds the top content categories for display; targeting scores
    any concept it needs from ``embedding`` directly. ``text`` is what OCR read (empty when OCR
    is off; a keyframe between two reads of a shot carries the last read: ``vision.analyze``).
    """

    media_id: str
    t: float
    embedding: np.ndarray | None = None
    detections: tuple[Detection, ...] = ()
    logos: tuple[LogoMatch, ...] = ()
    safety: tuple[SafetyFlag, ...] = ()
    concepts: tuple[ConceptScore, ...] = ()
    text: tuple[TextRead, ...] = ()
    reason: KeyframeReason = "interval"
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.t) or self.t < 0:
            raise ValueError(f"FrameFacts.t must be a finite time >= 0 s, got {self.t!r}")
        emb = self.embedding
        if emb is not None and (not isinstance(emb, np.ndarray) or emb.ndim != 1):
            shape = getattr(emb, "shape", type(emb).__name__)
            raise ValueError(f"FrameFacts.embedding must be (D,), got {shape}")

    @property
    def faces(self) -> tuple[Detection, ...]:
        return tuple(d for d in self.detections if d.kind == "face")
