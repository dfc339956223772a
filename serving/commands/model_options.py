"""Command-line options that choose models, shared by analyze, scan, serve and target."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

from serving.commands.arg_types import positive_int, positive_seconds
from vision.analyze import DEFAULT_BATCH_SIZE, Analyzer
from vision.errors import InvalidArgument
from vision.keyframes import KeyframeConfig
from vision.limits import DEFAULT_KEYFRAME_INTERVAL_S
from vision.pipeline import ClipMode, Pipeline, PipelineConfig, build_pipeline

if TYPE_CHECKING:
    from targeting.rules_loader import RuleSet


def add_model_options(p: argparse.ArgumentParser, *, clip_default: ClipMode = "auto") -> None:
    g = p.add_argument_group("models")
    g.add_argument(
        "--random-weights",
        action="store_true",
        help="run CLIP with random weights (tests/benchmarks: same compute, meaningless scores)",
    )
    g.add_argument("--no-clip", action="store_true", help="do not load CLIP at all")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="keyframes per model call",
    )
    g.add_argument(
        "--interval",
        type=positive_seconds,
        default=DEFAULT_KEYFRAME_INTERVAL_S,
        help="seconds between keyframes in a video (shot cuts are added)",
    )
    p.set_defaults(clip_default=clip_default)


def check_model_options(args: argparse.Namespace) -> None:
    """Refuse model options that contradict each other (InvalidArgument: exit 2, one line).

    Each value is checked by its ``type=`` when parsed; this checks them together (and again
    the values, for a Namespace built by hand), so a command calls it before any work.
    """
    if args.random_weights and args.no_clip:
        raise InvalidArgument("--random-weights and --no-clip contradict each other: pick one")
    if not (math.isfinite(args.interval) and args.interval > 0):
        raise InvalidArgument(
            f"--interval must be a finite number of seconds > 0, got {args.interval}"
        )
    if args.batch_size < 1:
        raise InvalidArgument(f"--batch-size must be a whole number >= 1, got {args.batch_size}")


def pipeline_config_from_args(
    args: argparse.Namespace, *, brands_dir: Path | None, clip_default: ClipMode | None = None
) -> PipelineConfig:
    check_model_options(args)
    default: ClipMode = clip_default or args.clip_default
    clip: ClipMode = "random" if args.random_weights else "off" if args.no_clip else default
    return PipelineConfig(
        brands_dir=brands_dir,
        clip=clip,
        device=args.device,
        batch_size=args.batch_size,
        keyframes=KeyframeConfig(interval_s=args.interval),
    )


def pipeline_config_for_rules(args: argparse.Namespace, rules: RuleSet) -> PipelineConfig:
    """The models a rules directory needs: CLIP is required exactly when the rules use it
    (concept or IAB clauses, excluded concepts, prompt-based safety classes) and skipped
    otherwise unless asked for. The pipeline loads no reference logos: the rules snapshot
    (``serving.targeter.build_snapshot``) builds the matcher from the rules' brands, so a reload
    rebuilds it, and face-only rules (no or an empty ``brands/``) load none."""
    from serving.targeter import clip_needs

    cfg = pipeline_config_from_args(
        args,
        brands_dir=None,  # the rules snapshot (serving.targeter) builds the logo matcher
        clip_default="required" if clip_needs(rules) else "off",
    )
    # OCR costs ~1 s a frame on a CPU: it runs only for rules that target or exclude text
    return dataclasses.replace(cfg, ocr=rules.uses_text)


def build_analyzer_from_args(
    args: argparse.Namespace, *, brands_dir: Path | None
) -> tuple[Analyzer, Pipeline]:
    """(Analyzer, Pipeline) for a command's parsed arguments."""
    pipe: Pipeline = build_pipeline(pipeline_config_from_args(args, brands_dir=brands_dir))
    return pipe.analyzer, pipe
