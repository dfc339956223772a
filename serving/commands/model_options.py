"""Command-line options that choose models, shared by analyze, scan, serve and target."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

from serving.commands.arg_types import nonnegative_seconds, positive_int, positive_seconds
from vision.analyze import DEFAULT_BATCH_SIZE, DEFAULT_OCR_INTERVAL_S, Analyzer
from vision.errors import InvalidArgument
from vision.keyframes import KeyframeConfig
from vision.limits import DEFAULT_KEYFRAME_INTERVAL_S
from vision.pipeline import Pipeline, PipelineConfig, build_pipeline
from vision.semantic import SemanticChoice

if TYPE_CHECKING:
    from targeting.rules_loader import RuleSet


SEMANTIC_FLAG_CHOICES = ("auto", "clip", "lite", "off")


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument(
        "--semantic",
        choices=SEMANTIC_FLAG_CHOICES,
        default=None,
        help="semantic model for concepts, IAB and prompt safety: auto (default: clip when its "
        "weights are fetched, else lite), clip, lite (embedded, any CPU) or off",
    )
    g.add_argument(
        "--random-weights",
        action="store_true",
        help="run CLIP with random weights (tests/benchmarks: same compute, meaningless scores)",
    )
    g.add_argument(
        "--clip-int8",
        action="store_true",
        help="CPU only: run CLIP's image tower with int8 dynamic quantization (~1.4x faster, "
        "embedding cosine to fp32 >= 0.9998)",
    )
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="keyframes per model call",
    )
    g.add_argument(
        "--ocr",
        choices=("auto", "on", "off"),
        default="auto",
        help="read on-screen text (PP-OCRv4, ~1 s a frame on a CPU): auto (default) reads it "
        "when rules target or exclude text or use IAB categories (read text feeds IAB), and in "
        "analyze whenever the semantic model runs",
    )
    g.add_argument(
        "--ocr-interval",
        type=nonnegative_seconds,
        default=DEFAULT_OCR_INTERVAL_S,
        help="most seconds of video between two OCR reads of one shot (cuts are always read)",
    )
    g.add_argument(
        "--logo-detector",
        type=Path,
        default=None,
        metavar="PATH",
        help="trained logo detector (.pt with its card, from `onscreen train-logos`) fused "
        "with the reference matcher; overrides logos.yaml's detector (its brands must be "
        "exactly the rules' or --brands' brands)",
    )
    g.add_argument(
        "--interval",
        type=positive_seconds,
        default=DEFAULT_KEYFRAME_INTERVAL_S,
        help="seconds between keyframes in a video (shot cuts are added)",
    )


def check_model_options(args: argparse.Namespace) -> None:
    """Refuse model options that contradict each other (InvalidArgument: exit 2, one line).

    Each value is checked by its ``type=`` when parsed; this checks them together (and again
    the values, for a Namespace built by hand), so a command calls it before any work.
    """
    semantic_of_flags(args.semantic, args.random_weights)
    if args.clip_int8 and args.semantic in ("lite", "off"):
        raise InvalidArgument(
            f"--clip-int8 quantizes CLIP, but --semantic {args.semantic} runs no CLIP: pick one"
        )
    if not (math.isfinite(args.interval) and args.interval > 0):
        raise InvalidArgument(
            f"--interval must be a finite number of seconds > 0, got {args.interval}"
        )
    if args.batch_size < 1:
        raise InvalidArgument(f"--batch-size must be a whole number >= 1, got {args.batch_size}")
    det = getattr(args, "logo_detector", None)
    if det is not None:
        if Path(det).suffix != ".pt":
            raise InvalidArgument(f"--logo-detector {det}: not a .pt file (train-logos writes one)")
        if not Path(det).is_file():
            raise InvalidArgument(
                f"--logo-detector {det}: no such file; train one with "
                f"`onscreen train-logos RULES_DIR --out {det}`"
            )


def check_logo_detector_for(args: argparse.Namespace, brands: list[str], what: str) -> None:
    """Refuse ``--logo-detector`` when its card does not fit ``brands`` (InvalidArgument naming
    both lists, or saying there are no brands), before any model loads. ``what``: where the
    brands come from, for the message."""
    from vision.errors import ModelError
    from vision.logo_training.registry import check_detector_card

    det = getattr(args, "logo_detector", None)
    if det is None:
        return
    if not brands:
        raise InvalidArgument(
            f"--logo-detector {det}: {what} has no brands, so a logo detector has nothing to find"
        )
    try:
        check_detector_card(Path(det), brands)
    except ModelError as exc:
        raise InvalidArgument(f"--logo-detector: {exc}") from None


def semantic_of_flags(semantic: str | None, random_weights: bool) -> SemanticChoice:
    """``random`` for --random-weights, else --semantic (``auto`` when not given); the two
    flags together only as ``--semantic clip --random-weights`` (InvalidArgument otherwise).
    Shared by the analysis commands and ``onscreen catalog``."""
    if random_weights and semantic not in (None, "clip"):
        raise InvalidArgument(
            f"--random-weights (random CLIP) and --semantic {semantic} contradict each "
            "other: pick one"
        )
    choice: SemanticChoice = "random" if random_weights else (semantic or "auto")  # type: ignore[assignment]
    return choice


def semantic_choice(args: argparse.Namespace) -> SemanticChoice:
    """The semantic model the flags ask for (``semantic_of_flags``), after every model option
    is checked together."""
    check_model_options(args)
    return semantic_of_flags(args.semantic, args.random_weights)


def pipeline_config_from_args(
    args: argparse.Namespace, *, brands_dir: Path | None
) -> PipelineConfig:
    from vision.logo_fusion import DetectorSettings

    semantic = semantic_choice(args)
    det = getattr(args, "logo_detector", None)
    return PipelineConfig(
        brands_dir=brands_dir,
        logo_detector=DetectorSettings(Path(det)) if det is not None else None,
        semantic=semantic,
        clip_int8=args.clip_int8,
        device=args.device,
        batch_size=args.batch_size,
        keyframes=KeyframeConfig(interval_s=args.interval),
        # analyze shows IAB categories whenever a semantic model runs, and read text feeds them
        ocr=args.ocr == "on" or (args.ocr == "auto" and semantic != "off"),
        ocr_interval_s=args.ocr_interval,
    )


def pipeline_config_for_rules(
    args: argparse.Namespace, rules: RuleSet, *, semantic_for: str | None = None
) -> PipelineConfig:
    """The models a rules directory needs. The semantic model loads exactly when the rules use
    it (concept or IAB clauses, excluded concepts, prompt-based safety classes), unless the
    flags name one; rules that need it with ``--semantic off`` are refused with where they need
    it (file:line). The pipeline loads no reference logos: the rules snapshot
    (``serving.targeter.build_snapshot``) builds the matcher from the rules' brands, so a reload
    rebuilds it, and face-only rules (no or an empty ``brands/``) load none. OCR (~1 s a frame
    on a CPU) runs, with ``--ocr auto``, for rules that target or exclude text or use IAB
    categories (read text feeds them). ``--logo-detector`` is checked against the rules' brands
    here (its card, no model loaded); the snapshot loads it. ``semantic_for``: a flag that needs the semantic model
    whatever the rules say (``--catalog``: its visual features); ``--semantic off`` with it is
    refused."""
    from serving.targeter import semantic_needs

    cfg = pipeline_config_from_args(args, brands_dir=None)
    check_logo_detector_for(args, sorted(rules.brands), f"the rules directory {rules.root}")
    if semantic_for is not None and cfg.semantic == "off":
        raise InvalidArgument(
            f"--semantic off, but {semantic_for} needs the semantic model's visual features: "
            "drop --semantic off"
        )
    needs = semantic_needs(rules)
    if needs and cfg.semantic == "off":
        raise InvalidArgument(
            "--semantic off, but these rules need a semantic model:\n  " + "\n  ".join(needs)
        )
    explicit = args.random_weights or args.semantic is not None
    if not needs and not explicit and semantic_for is None:
        cfg = dataclasses.replace(cfg, semantic="off")
    if args.ocr == "off" and rules.uses_text:
        raise InvalidArgument(
            "--ocr off, but these rules target or exclude on-screen text: drop --ocr off"
        )
    ocr = args.ocr == "on" or (args.ocr == "auto" and (rules.uses_text or bool(rules.iab_ids())))
    return dataclasses.replace(cfg, ocr=ocr)


def build_analyzer_from_args(
    args: argparse.Namespace, *, brands_dir: Path | None
) -> tuple[Analyzer, Pipeline]:
    """(Analyzer, Pipeline) for a command's parsed arguments."""
    pipe: Pipeline = build_pipeline(pipeline_config_from_args(args, brands_dir=brands_dir))
    return pipe.analyzer, pipe
