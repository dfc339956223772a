"""``onscreen report RESULTS.jsonl --out report.html``: scan results as a page for advertisers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="turn scan results (JSONL) into one static HTML page to open offline",
        description=(
            "Per media: a timeline of placements per campaign, each placement's reasons, "
            "blocked segments and what blocked them, and keyframe thumbnails with the detected "
            "boxes (blocked segments and keyframe facts need `onscreen scan --explain` output; "
            "thumbnails need --media-root). The page loads nothing from the network."
        ),
    )
    p.add_argument("results", type=Path, help="JSONL written by `onscreen scan`")
    p.add_argument("--out", type=Path, required=True, help="HTML file to write")
    p.add_argument(
        "--media-root",
        type=Path,
        help="directory holding the scanned media (a media id is a file name under it); "
        "without it the page has no thumbnails",
    )
    p.add_argument("--title", help="page title (default: the results file's name)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from serving.batch.report import build_report, write_report
    from vision.errors import OnscreenError

    if args.media_root is not None and not args.media_root.is_dir():
        raise OnscreenError(f"--media-root {args.media_root}: not a directory")
    quiet = getattr(args, "quiet", False)
    page, stats = build_report(
        args.results,
        media_root=args.media_root,
        title=getattr(args, "title", None),
        progress=None if quiet else (lambda line: print(line, file=sys.stderr, flush=True)),
    )
    write_report(page, args.out)
    size = len(page.encode()) / 2**20
    print(
        f"report: {stats.media} media ({stats.failed} with errors), {stats.placements} "
        f"placements, {stats.blocked} blocked segments -> {args.out} ({size:.1f} MiB)",
        file=sys.stderr,
    )
    return 0
