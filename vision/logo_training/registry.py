"""A trained logo detector's card: what a ``.pt`` was trained for, in a JSON file beside it.

Why: a detector's classes are brand *indices*; loaded against rules whose brands differ, class
0 would be reported as whatever brand the rules call 0, a wrong logo fact nobody could
explain. The card binds the weights (sha256) to the brands they were trained for (names in
class order, and a fingerprint of the reference images) so that loading can refuse a
mismatch with a message naming both brand lists.

The card is ``<weights>.json`` (``logos-acme.pt`` -> ``logos-acme.pt.json``)::

    {"format": 1, "weights_sha256": "...", "classes": ["acme", "rival"],
     "brands_fingerprint": "...", "architecture": "yolov8n.yaml", "pretrained": true,
     "derived_from": "nudenet-320n", "license": "AGPL-3.0",
     "imgsz": 320, "epochs": 15, "n_images": 400, "seed": 0, "trained_at": "2026-...Z",
     "train_seconds": 812.3, "metrics": {"mAP50": 0.41, ...}}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vision.brands import BrandRefs
from vision.errors import ModelError

CARD_FORMAT = 1
"""Version of the card's JSON layout."""

CARD_SUFFIX = ".json"
"""Appended to the weights file's name to name its card."""

RETRAIN_HINT = "retrain it: `onscreen train-logos RULES_DIR --out {weights}`"
"""The command that makes a detector fit the rules again (``{weights}``: its path)."""

MAX_CARD_BYTES = 1 << 20
"""A card larger than this (bytes) is not one of ours."""


def card_path(weights: Path) -> Path:
    """Where the card of ``weights`` lives: the same name with ``.json`` appended."""
    weights = Path(weights)
    return weights.with_name(weights.name + CARD_SUFFIX)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def brands_fingerprint(brands: Sequence[BrandRefs]) -> str:
    """Hex sha256 over the brand names in order and each reference's pixels and mask.

    Pixels, not file bytes: re-saving a logo with other PNG settings does not change what a
    detector learnt from it, while a new or edited reference does.
    """
    digest = hashlib.sha256()
    for ref in brands:
        digest.update(ref.brand.encode() + b"\0")
        for image, mask in zip(ref.images, ref.masks, strict=True):
            digest.update(repr(image.shape).encode())
            digest.update(image.tobytes())
            digest.update(b"mask" if mask is not None else b"opaque")
            if mask is not None:
                digest.update(mask.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class DetectorCard:
    """What a trained logo detector was trained for (see the module docstring)."""

    weights_sha256: str
    classes: tuple[str, ...]
    brands_fingerprint: str
    imgsz: int
    epochs: int
    trained_at: str
    architecture: str = "yolov8n.yaml"
    pretrained: bool = False
    n_images: int = 0
    seed: int = 0
    train_seconds: float = 0.0
    metrics: Mapping[str, float] = field(default_factory=dict)
    derived_from: str = ""
    """The weights-manifest model training started from ("" from scratch)."""
    license: str = ""
    """The licence the detector inherits from ``derived_from`` ("": none inherited)."""
    format: int = CARD_FORMAT

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("a detector card needs at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"detector card classes repeat a name: {list(self.classes)}")

    def to_json(self) -> str:
        data = asdict(self)
        data["classes"] = list(self.classes)
        data["metrics"] = {k: float(v) for k, v in self.metrics.items() if math.isfinite(v)}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self, weights: Path) -> Path:
        """Write this card beside ``weights``; returns the card's path."""
        path = card_path(weights)
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, weights: Path) -> DetectorCard:
        """Read the card of ``weights``. ModelError when it is missing, unreadable or not a
        card (naming the file and the command that makes one)."""
        path = card_path(weights)
        hint = "train one with `onscreen train-logos RULES_DIR --out ...`"
        if not path.is_file():
            raise ModelError(
                f"logo detector {weights}: its card {path.name} is missing, so which brands it "
                f"detects is unknown; {hint}"
            )
        if path.stat().st_size > MAX_CARD_BYTES:
            raise ModelError(f"{path}: over {MAX_CARD_BYTES} bytes, not a logo detector card")
        try:
            data: Any = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: not a readable logo detector card ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise ModelError(f"{path}: not a format-{CARD_FORMAT} logo detector card; {hint}")
        try:
            return cls(
                weights_sha256=str(data["weights_sha256"]),
                classes=tuple(str(c) for c in data["classes"]),
                brands_fingerprint=str(data["brands_fingerprint"]),
                imgsz=int(data["imgsz"]),
                epochs=int(data["epochs"]),
                trained_at=str(data["trained_at"]),
                architecture=str(data.get("architecture", "")),
                pretrained=bool(data.get("pretrained", False)),
                n_images=int(data.get("n_images", 0)),
                seed=int(data.get("seed", 0)),
                train_seconds=float(data.get("train_seconds", 0.0)),
                metrics={str(k): float(v) for k, v in dict(data.get("metrics", {})).items()},
                derived_from=str(data.get("derived_from", "")),
                license=str(data.get("license", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: malformed logo detector card ({exc}); {hint}") from None


def check_detector_card(weights: Path, brands: Sequence[str]) -> DetectorCard:
    """The card of ``weights`` once it is known to fit ``brands`` (names), without loading
    the model: the file exists, its card is readable, its sha256 is the card's and the card's
    classes are exactly ``brands``. ModelError otherwise, naming both brand lists on a
    mismatch. Cheap (a hash and a JSON file), so ``rules check`` and the CLIs run it before
    any model loads; ``vision.logo_detector.LogoDetector`` runs it again when it loads.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(
            f"logo detector {weights} not found; train one with "
            f"`onscreen train-logos RULES_DIR --out {weights}`"
        )
    card = DetectorCard.read(weights)
    hint = RETRAIN_HINT.format(weights=weights)
    digest = file_sha256(weights)
    if digest != card.weights_sha256:
        raise ModelError(
            f"logo detector {weights}: sha256 {digest[:12]}... does not match its card's "
            f"{card.weights_sha256[:12]}... (the file was replaced or damaged); {hint}"
        )
    if sorted(brands) != sorted(card.classes):
        raise ModelError(
            f"logo detector {weights.name} was trained for brands "
            f"[{', '.join(card.classes)}] but the rules name [{', '.join(sorted(brands))}]; "
            f"{hint}"
        )
    return card


def register_detector(
    weights: Path,
    brands: Sequence[BrandRefs],
    *,
    imgsz: int,
    epochs: int,
    n_images: int = 0,
    seed: int = 0,
    train_seconds: float = 0.0,
    metrics: Mapping[str, float] | None = None,
    architecture: str = "yolov8n.yaml",
    pretrained: bool = False,
    derived_from: str = "",
    license: str = "",
) -> DetectorCard:
    """Write the card of a YOLO weights file trained for ``brands`` (class k = brands[k]).

    :func:`vision.logo_training.train.train_logo_detector` calls it; it is also how weights
    trained elsewhere (a GPU machine, an intermediate ``last.pt``) are registered. The
    model's own class names are checked against the card when it is loaded.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"{weights}: no such weights file to register")
    card = DetectorCard(
        weights_sha256=file_sha256(weights),
        classes=tuple(b.brand for b in brands),
        brands_fingerprint=brands_fingerprint(brands),
        imgsz=int(imgsz),
        epochs=int(epochs),
        trained_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        architecture=architecture,
        pretrained=pretrained,
        n_images=int(n_images),
        seed=int(seed),
        train_seconds=round(float(train_seconds), 1),
        metrics=dict(metrics or {}),
        derived_from=derived_from,
        license=license,
    )
    card.write(weights)
    return card
