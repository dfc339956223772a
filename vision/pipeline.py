"""Which models run, from which weights: the one place that turns configuration into an Analyzer.

Policy, in one place so every entry point (CLI, batch scan, gRPC server) behaves the same:

- The face/safety detector comes from the manifest (``nudenet-320n``); missing weights are a
  start-up error naming the fetch command.
- The semantic model (``vision.semantic``) has five choices. ``auto`` (the default): CLIP when
  its weights are fetched, else ``lite``, the embedded stack that runs on any CPU. ``clip`` /
  ``lite``: that model, or a start-up error naming the fetch command. ``random``: CLIP's
  architecture with a fixed random init, announced loudly and flagged as not meaningful (tests
  and benchmarks only). ``off``: no semantics (faces, logos and text still work). No choice
  ever swaps in a random model silently.
- Reference logos come from a brands directory when one is given; ``logo_detector`` (a trained
  detector, ``vision.logo_fusion.DetectorSettings``) then joins the matcher as a
  ``FusedLogoFinder``, refused (ModelError naming both brand lists) when its card names other
  brands. Without a brands directory ``logo_detector`` is only carried: the rules snapshot
  (``serving.targeter``) builds the fused finder from the rules' brands.
- OCR (``ocr=True``) loads the PP-OCRv4 models from the manifest (missing: a start-up error
  naming the fetch command) and reads keyframes at most every ``ocr_interval_s`` per shot.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vision.analyze import DEFAULT_BATCH_SIZE, DEFAULT_OCR_INTERVAL_S, Analyzer
from vision.detectors import DEFAULT_DETECTOR_CONF, DEFAULT_DETECTOR_IMGSZ
from vision.errors import WeightsError
from vision.keyframes import KeyframeConfig
from vision.logo_fusion import DetectorSettings
from vision.semantic import (
    SEMANTIC_CHOICES,
    SemanticChoice,
    SemanticModel,
    load_semantic_model,
)

if TYPE_CHECKING:
    from vision.logo_fusion import FusedLogoFinder
    from vision.logo_matcher import LogoMatcher

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_WEIGHTS = "clip-vit-b-32-laion2b"
DEFAULT_DETECTOR_WEIGHTS = "nudenet-320n"
LITE_FETCH = "onscreen weights fetch efficientnet-lite0 all-minilm-l6-v2"

RANDOM_CLIP_NOTICE = (
    "CLIP runs with RANDOM weights (--random-weights): concept, IAB and prompt-safety scores are "
    "NOT meaningful; faces and logos are real"
)


@dataclass(frozen=True)
class PipelineConfig:
    """What to load. Names refer to entries of ``weights/manifest.toml``."""

    brands_dir: Path | None = None
    logo_detector: DetectorSettings | None = None
    semantic: SemanticChoice = "auto"
    clip_model: str = DEFAULT_CLIP_MODEL
    clip_weights: str = DEFAULT_CLIP_WEIGHTS
    clip_int8: bool = False
    detector_weights: str | None = DEFAULT_DETECTOR_WEIGHTS
    detector_imgsz: int = DEFAULT_DETECTOR_IMGSZ
    detector_conf: float = DEFAULT_DETECTOR_CONF
    device: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE
    iab: bool = True
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    ocr: bool = False
    ocr_interval_s: float = DEFAULT_OCR_INTERVAL_S

    @property
    def logo_detector_path(self) -> Path | None:
        """The trained logo detector's weights (``--logo-detector``), None without one."""
        return self.logo_detector.weights if self.logo_detector is not None else None

    def __post_init__(self) -> None:
        if self.semantic not in SEMANTIC_CHOICES:
            raise ValueError(
                f"semantic model must be one of {SEMANTIC_CHOICES}, got {self.semantic!r}"
            )


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A ready Analyzer plus what callers need to describe and extend it.

    ``semantic`` is the semantic model (None when off) so targeting embeds its concepts in the
    same space as the frames; ``notices`` are lines a CLI prints once to stderr;
    ``iab_ids``/``iab_matrix`` are the IAB vocabulary's embeddings in that space.
    """

    analyzer: Analyzer
    config: PipelineConfig
    semantic: SemanticModel | None
    notices: tuple[str, ...]
    iab_ids: tuple[str, ...] = ()
    iab_matrix: np.ndarray | None = None

    @property
    def keyframes(self) -> KeyframeConfig:
        return self.config.keyframes

    @property
    def semantic_name(self) -> str:
        """``clip``, ``clip-random``, ``lite`` or ``off``."""
        return self.semantic.name if self.semantic is not None else "off"

    @property
    def meaningful(self) -> bool:
        """False only when a random-weight model makes the semantic scores mechanics."""
        return self.semantic is None or self.semantic.meaningful


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


def _load_semantic(cfg: PipelineConfig, notices: list[str]) -> SemanticModel | None:
    if cfg.semantic == "random":
        # The pipeline says it once, in its own notice (which also says what stays real);
        # the embedder's own warning would say it a second time on every entry point.
        notices.append(RANDOM_CLIP_NOTICE)
        with _without_random_weights_warning():
            return load_semantic_model(
                "random", device=cfg.device, clip_model=cfg.clip_model, clip_int8=cfg.clip_int8
            )
    try:
        model = load_semantic_model(
            cfg.semantic,
            device=cfg.device,
            clip_model=cfg.clip_model,
            clip_weights=cfg.clip_weights,
            clip_int8=cfg.clip_int8,
        )
    except WeightsError as exc:
        hint = (
            f"onscreen weights fetch {cfg.clip_weights}" if cfg.semantic == "clip" else LITE_FETCH
        )
        raise WeightsError(
            f"{exc}\n  fetch with `{hint}` (`make weights` fetches the defaults), or pass "
            "--semantic off to run without semantics (concepts, IAB and prompt safety need it), "
            "or --random-weights for tests and benchmarks (scores are then not meaningful)"
        ) from exc
    if cfg.clip_int8 and model is not None and not model.name.startswith("clip"):
        notices.append(f"--clip-int8 has no effect: the semantic model is {model.name}, not CLIP")
    return model


def build_pipeline(cfg: PipelineConfig) -> Pipeline:
    """Load every configured model once and wire them into an Analyzer."""
    from vision.safety import SafetyScorer
    from vision.vocabulary import ConceptVocabulary

    notices: list[str] = []
    semantic = _load_semantic(cfg, notices)
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
    logos: LogoMatcher | FusedLogoFinder | None = None
    if cfg.brands_dir is not None:
        from vision.brands import load_brands
        from vision.logo_fusion import build_fused_finder
        from vision.logo_matcher import LogoMatcher

        refs = load_brands(cfg.brands_dir)
        logos = LogoMatcher(refs)
        if cfg.logo_detector is not None:
            logos = build_fused_finder(logos, refs, cfg.logo_detector, device=cfg.device)
    concepts = None
    iab_ids: tuple[str, ...] = ()
    iab_matrix = None
    if semantic is not None and cfg.iab:
        index = ConceptVocabulary.from_iab().index(semantic)
        concepts = index
        iab_ids = tuple(index.vocabulary.ids)
        iab_matrix = index.matrix
    safety = SafetyScorer.for_model(semantic)
    ocr = None
    if cfg.ocr:
        from vision.ocr import text_reader

        ocr = text_reader(device=cfg.device)
    analyzer = Analyzer(
        semantic=semantic,
        detector=detector,
        logos=logos,
        concepts=concepts,
        safety=safety,
        batch_size=cfg.batch_size,
        ocr=ocr,
        ocr_interval_s=cfg.ocr_interval_s,
    )
    return Pipeline(analyzer, cfg, semantic, tuple(notices), iab_ids, iab_matrix)
