"""Command-line options that choose models, shared by analyze, scan, serve and target."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vision.analyze import DEFAULT_BATCH_SIZE, Analyzer
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
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="keyframes per model call"
    )
    g.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_KEYFRAME_INTERVAL_S,
        help="seconds between keyframes in a video (shot cuts are added)",
    )
    p.set_defaults(clip_default=clip_default)


def pipeline_config_from_args(
    args: argparse.Namespace, *, brands_dir: Path | None, clip_default: ClipMode | None = None
) -> PipelineConfig:
    if args.random_weights and args.no_clip:
        raise SystemExit("--random-weights and --no-clip contradict each other: pick one")
    default: ClipMode = clip_default or args.clip_default
    clip: ClipMode = "random" if args.random_weights else "off" if args.no_clip else default
    if args.interval <= 0:
        raise SystemExit(f"--interval must be > 0 seconds, got {args.interval}")
    if args.batch_size < 1:
        raise SystemExit(f"--batch-size must be >= 1, got {args.batch_size}")
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
    otherwise unless asked for; reference logos come from the rules' ``brands/``."""
    from serving.targeter import clip_needs

    return pipeline_config_from_args(
        args,
        brands_dir=rules.root / "brands",
        clip_default="required" if clip_needs(rules) else "off",
    )


def build_analyzer_from_args(
    args: argparse.Namespace, *, brands_dir: Path | None
) -> tuple[Analyzer, Pipeline]:
    """(Analyzer, Pipeline) for a command's parsed arguments."""
    pipe: Pipeline = build_pipeline(pipeline_config_from_args(args, brands_dir=brands_dir))
    return pipe.analyzer, pipe
