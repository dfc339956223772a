"""Which models run, from which weights: the one place that turns configuration into an Analyzer.

Policy, in one place so every entry point (CLI, batch scan, gRPC server) behaves the same:

- The face/safety detector comes from the manifest (``nudenet-320n``); missing weights are a
  start-up error naming the fetch command.
- CLIP has four modes. ``required``: real weights or a start-up error. ``random``: the same
  architecture with a fixed random init, announced loudly and flagged as not meaningful.
  ``auto``: real weights when fetched, otherwise CLIP is left out *and that is said* (analyze is a
  debugging tool; detectors and logos still work). ``off``: no CLIP. No mode ever swaps in a
  random model silently.
- Reference logos come from a brands directory when one is given.
- OCR (``ocr=True``) loads the PP-OCRv4 models from the manifest (missing: a start-up error
  naming the fetch command) and reads keyframes at most every ``ocr_interval_s`` per shot.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from vision.analyze import DEFAULT_BATCH_SIZE, DEFAULT_OCR_INTERVAL_S, Analyzer
from vision.errors import WeightsError
from vision.keyframes import KeyframeConfig

if TYPE_CHECKING:  # the real import is deferred: loading torch is the caller's choice
    from vision.clip_embedder import ClipEmbedder

log = logging.getLogger(__name__)

ClipMode = Literal["auto", "required", "random", "off"]
CLIP_MODES: tuple[str, ...] = ("auto", "required", "random", "off")
DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_WEIGHTS = "clip-vit-b-32-laion2b"
DEFAULT_DETECTOR_WEIGHTS = "nudenet-320n"
DEFAULT_DETECTOR_IMGSZ = 480
"""NudeNet was trained at 320, but at 320 a 1280x720 frame's faces shrink below what it finds
(zidane.jpg: no face at 320, both at 480). 480 costs ~2.25x the detector's compute."""
DEFAULT_DETECTOR_CONF = 0.15
"""Low, so small faces survive; rules filter by their own min_score (faces 0.4, nudity 0.45)."""

RANDOM_CLIP_NOTICE = (
    "CLIP runs with RANDOM weights (--random-weights): concept, IAB and prompt-safety scores are "
    "NOT meaningful; faces and logos are real"
)


@dataclass(frozen=True)
class PipelineConfig:
    """What to load. Names refer to entries of ``weights/manifest.toml``."""

    brands_dir: Path | None = None
    clip: ClipMode = "auto"
    clip_model: str = DEFAULT_CLIP_MODEL
    clip_weights: str = DEFAULT_CLIP_WEIGHTS
    detector_weights: str | None = DEFAULT_DETECTOR_WEIGHTS
    detector_imgsz: int = DEFAULT_DETECTOR_IMGSZ
    detector_conf: float = DEFAULT_DETECTOR_CONF
    device: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE
    iab: bool = True
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    ocr: bool = False
    ocr_interval_s: float = DEFAULT_OCR_INTERVAL_S

    def __post_init__(self) -> None:
        if self.clip not in CLIP_MODES:
            raise ValueError(f"clip mode must be one of {CLIP_MODES}, got {self.clip!r}")


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A ready Analyzer plus what callers need to describe and extend it.

    ``clip`` is the embedder (None when CLIP is not loaded) so targeting can embed its concepts
    in the same space; ``clip_meaningful`` is False for random weights; ``notices`` are lines a
    CLI prints once to stderr; ``iab_ids``/``iab_matrix`` are the IAB vocabulary's embeddings.
    """

    analyzer: Analyzer
    config: PipelineConfig
    clip: ClipEmbedder | None
    clip_meaningful: bool
    notices: tuple[str, ...]
    iab_ids: tuple[str, ...] = ()
    iab_matrix: np.ndarray | None = None

    @property
    def keyframes(self) -> KeyframeConfig:
        return self.config.keyframes


@contextlib.contextmanager
def _without_random_weights_warning() -> Iterator[None]:
    logger = logging.getLogger("vision.clip_embedder")

    def drop(record: logging.LogRecord) -> bool:
        return "RANDOM WEIGHTS" not in record.getMessage()

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _load_clip(cfg: PipelineConfig, notices: list[str]) -> tuple[ClipEmbedder | None, bool]:
    from vision.clip_embedder import ClipEmbedder
    from vision.weights import Manifest, resolve

    if cfg.clip == "off":
        return None, False
    if cfg.clip == "random":
        # The pipeline says it once, in its own notice (which also says what stays real);
        # the embedder's own warning would say it a second time on every entry point.
        notices.append(RANDOM_CLIP_NOTICE)
        with _without_random_weights_warning():
            clip = ClipEmbedder(cfg.clip_model, random_weights=True, device=cfg.device)
        return clip, False
    try:
        path = resolve(cfg.clip_weights)
    except WeightsError as exc:
        if cfg.clip == "required":
            raise WeightsError(
                f"{exc} (or pass --random-weights for tests and benchmarks: scores are then "
                "not meaningful)"
            ) from exc
        notices.append(
            f"CLIP weights '{cfg.clip_weights}' are not present, so concepts and prompt-based "
            f"safety are skipped: run `onscreen weights fetch {cfg.clip_weights}`, or pass "
            "--random-weights"
        )
        return None, False
    # resolve() verified the file against the manifest: hand over its sha256 rather than hash
    # 600 MB again at every start
    sha = Manifest.load().get(cfg.clip_weights).sha256
    return ClipEmbedder(cfg.clip_model, weights=path, device=cfg.device, weights_sha256=sha), True


def build_pipeline(cfg: PipelineConfig) -> Pipeline:
    """Load every configured model once and wire them into an Analyzer."""
    from vision.safety import SafetyScorer
    from vision.vocabulary import ConceptVocabulary

    notices: list[str] = []
    clip, meaningful = _load_clip(cfg, notices)
    detector = None
    if cfg.detector_weights:
        from vision.detectors import face_safety_detector
        from vision.weights import resolve

        detector = face_safety_detector(
            resolve(cfg.detector_weights),
            imgsz=cfg.detector_imgsz,
            conf=cfg.detector_conf,
            device=cfg.device,
        )
    logos = None
    if cfg.brands_dir is not None:
        from vision.logo_matcher import LogoMatcher

        logos = LogoMatcher.from_brands_dir(cfg.brands_dir)
    concepts = None
    iab_ids: tuple[str, ...] = ()
    iab_matrix = None
    if clip is not None and cfg.iab:
        index = ConceptVocabulary.from_iab().index(clip)
        concepts = index
        iab_ids = tuple(index.vocabulary.ids)
        iab_matrix = index.matrix
    safety = SafetyScorer(clip)
    ocr = None
    if cfg.ocr:
        from vision.ocr import text_reader

        ocr = text_reader(device=cfg.device)
    analyzer = Analyzer(
        clip=clip,
        detector=detector,
        logos=logos,
        concepts=concepts,
        safety=safety,
        batch_size=cfg.batch_size,
        ocr=ocr,
        ocr_interval_s=cfg.ocr_interval_s,
    )
    return Pipeline(analyzer, cfg, clip, meaningful, tuple(notices), iab_ids, iab_matrix)
