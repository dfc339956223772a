"""``onscreen analyze FILE``: what the models see in an image or a video, for people and scripts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.commands.arg_types import existing_dir
from serving.commands.model_options import (
    add_model_options,
    build_analyzer_from_args,
    check_logo_detector_for,
    check_model_options,
)
from serving.facts_json import facts_table_rows, facts_to_json
from vision.errors import InvalidArgument, MediaError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="print faces, logos, safety flags and content categories found in an image or video",
        description="Analyze one image or video and print its facts (per keyframe for a video).",
    )
    p.add_argument("file", type=Path, help="image (JPEG/PNG/WebP) or video file")
    p.add_argument("--brands", type=existing_dir, help="brands directory: brands/<brand>/*.png|jpg")
    p.add_argument(
        "--json", action="store_true", help="print JSON (one object, or a list for a video)"
    )
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vision.media import is_video_file, load_frames

    path: Path = args.file
    check_model_options(args)
    if args.logo_detector is not None:
        if args.brands is None:
            raise InvalidArgument(
                f"--logo-detector {args.logo_detector} needs --brands DIR: the brands it was "
                "trained for (its reference logos verify its hits)"
            )
        names = sorted(
            d.name for d in Path(args.brands).iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        check_logo_detector_for(args, names, f"--brands {args.brands}")
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    analyzer, info = build_analyzer_from_args(args, brands_dir=args.brands)
    for line in info.notices:
        print(line, file=sys.stderr)
    facts = list(analyzer.analyze(load_frames(path, config=info.keyframes)))
    if args.json:
        payload = [facts_to_json(f) for f in facts]
        out = payload if is_video_file(path) else payload[0]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{path.name}: {len(facts)} keyframe(s)")
    for col in ("t", "what", "label", "score", "box [x0, y0, x1, y1]"):
        table.add_column(col)
    for row in facts_table_rows(facts):
        table.add_row(*row)
    Console().print(table)
    return 0
