"""``onscreen scan MEDIA... --rules DIR --out FILE.jsonl``: the batch job."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path

from serving.batch.isolated_decode import (
    DEFAULT_DECODE_MEMORY_MB,
    DEFAULT_DECODE_TIMEOUT_S,
    DecodeLimits,
)
from serving.batch.manifest import ManifestEntry, ManifestProblem, read_manifest
from serving.batch.outputs import write_parquet_from_jsonl
from serving.batch.pipeline import default_decode_workers
from serving.batch.progress import format_duration
from serving.batch.scan import (
    MEDIA_ID_SCHEMES,
    BatchSummary,
    MediaResult,
    plan_items,
    run_scan,
)
from serving.commands.arg_types import existing_dir, output_file, positive_int, positive_seconds
from serving.commands.model_options import (
    add_model_options,
    check_model_options,
    pipeline_config_for_rules,
)
from serving.placement_store import DEFAULT_BUSY_TIMEOUT_S, DEFAULT_WRITE_WAIT_S
from vision.errors import InvalidArgument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="scan videos/images against a rules directory into placements (JSONL)",
        description=(
            "Keyframes -> facts -> placements for each media. One JSON line per placement, one "
            '{"media", "error"} line per media that could not be read (the scan goes on). '
            "Every argument is checked before any model loads. Models: the face/safety "
            "detector always; reference-logo matching when the rules have brands/; OCR when "
            "they target or exclude text; the semantic model (--semantic) only when they use "
            "concepts, IAB or prompt safety. Exit 0 if at least one media was scanned, 1 if none "
            "was, 2 for a usage or input error or a placement store that stayed locked by "
            "another writer past --store-wait (one line; the media in progress is not "
            "checkpointed, so --resume redoes it)."
        ),
    )
    p.add_argument(
        "media", nargs="*", type=Path, help="video/image files or directories (recursive)"
    )
    p.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help='also scan the media a manifest lists: JSONL {"media_id", "path", ...} or CSV '
        "with a media_id,path,... header; paths relative to the manifest, other fields carried "
        "as metadata; a bad line is reported as FILE:LINE and becomes that media's error line",
    )
    p.add_argument(
        "--rules", type=existing_dir, required=True, help="rules directory (campaigns/, brands/)"
    )
    p.add_argument(
        "--out",
        type=output_file,
        required=True,
        help="JSONL output file (missing parent directories are created)",
    )
    p.add_argument(
        "--parquet", type=output_file, help="also write placements as a Parquet table here"
    )
    p.add_argument(
        "--store",
        type=output_file,
        help="placement store (SQLite) to upsert into, for the server's LookupPlacements",
    )
    p.add_argument(
        "--store-wait",
        type=positive_seconds,
        default=DEFAULT_WRITE_WAIT_S,
        metavar="SECONDS",
        help="how long to wait for another writer of the store before giving up "
        f"(default {DEFAULT_WRITE_WAIT_S:g})",
    )
    p.add_argument("--explain", action="store_true", help="add per-keyframe facts and decisions")
    p.add_argument("--resume", action="store_true", help="continue a scan that was interrupted")
    p.add_argument(
        "--table", action="store_true", help="print the placements as a table at the end"
    )
    p.add_argument(
        "--media-id",
        choices=MEDIA_ID_SCHEMES,
        default="name",
        help="what identifies a media in the output and the store (default: file name)",
    )
    p.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        help="day the campaigns' flight dates are checked against (default: today)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--decode-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="decode time allowed per media, plus the video's own duration (default "
        f"{DEFAULT_DECODE_TIMEOUT_S:g}); past it the decoder is killed and the media gets an "
        "error line",
    )
    p.add_argument(
        "--decode-memory-mb",
        type=positive_int,
        default=None,
        metavar="MB",
        help=f"memory the decode worker may use beyond its start-up size (default "
        f"{DEFAULT_DECODE_MEMORY_MB}); past it the media gets an error line",
    )
    p.add_argument(
        "--decode-workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="media decoded at once, each in its own worker process, while the models work "
        f"(default: half the cores, 1 to 4; here {default_decode_workers()})",
    )
    p.add_argument(
        "--decode-in-process",
        action="store_true",
        help="decode in the scan's own process, without the isolation (debugging)",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="scan on Ray Data: one model actor per GPU (or per few CPUs), same outputs; a "
        "local Ray instance unless --ray-address names a cluster (needs "
        "pip install 'onscreen[ray]')",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to scan on with --ray: auto (the cluster this node belongs to) or "
        "HEAD:6379; Ray Client (ray://) is refused, Ray Data needs its driver on the cluster",
    )
    add_model_options(p)
    p.set_defaults(func=run)


def check(args: argparse.Namespace) -> list[ManifestEntry | ManifestProblem]:
    """What the argument types cannot see alone; raises InvalidArgument before any work.
    Returns the manifest's entries and bad lines (in file order), the bad lines printed."""
    check_model_options(args)
    if not args.media and args.manifest is None:
        raise InvalidArgument("nothing to scan: give media files or directories, or --manifest")
    if args.ray_address is not None and not args.ray:
        raise InvalidArgument("--ray-address names the cluster of a --ray scan: add --ray")
    if args.ray and args.decode_workers is not None:
        raise InvalidArgument(
            "--decode-workers sizes the local pipeline; under --ray each actor decodes its own "
            "media (one actor per GPU, or per 4 CPUs)"
        )
    if args.ray:
        from serving.batch.ray_scan import require_ray

        require_ray(args.ray_address)  # no extra, or ray://: say so before any model loads
    if args.decode_in_process:
        flags = [
            flag
            for flag, value in (
                ("--decode-timeout", args.decode_timeout),
                ("--decode-memory-mb", args.decode_memory_mb),
            )
            if value is not None
        ]
        if flags:
            raise InvalidArgument(
                f"{' and '.join(flags)} limit the isolated decoder, but --decode-in-process "
                "decodes without it"
            )
    outputs = {"--out": args.out, "--parquet": args.parquet, "--store": args.store}
    given = {name: p.absolute() for name, p in outputs.items() if p is not None}
    seen: dict[Path, str] = {}
    for name, p in given.items():
        if p in seen:
            raise InvalidArgument(f"{seen[p]} and {name} name the same file {p}")
        seen[p] = name
    manifest: list[ManifestEntry | ManifestProblem] = []
    if args.manifest is not None:
        entries, problems = read_manifest(args.manifest)
        for problem in problems:
            print(f"onscreen scan: {problem}", file=sys.stderr)
        manifest = [*entries, *problems]
        manifest.sort(key=lambda x: int(x.where.rsplit(":", 1)[1]))  # file order
    plan_items(args.media, args.media_id, manifest)  # media ids that collide or are too long
    return manifest


def decode_limits(args: argparse.Namespace) -> DecodeLimits | None:
    """The decode worker's limits from the flags; None with --decode-in-process."""
    if args.decode_in_process:
        return None
    return DecodeLimits(
        timeout_s=args.decode_timeout or DEFAULT_DECODE_TIMEOUT_S,
        memory_mb=args.decode_memory_mb or DEFAULT_DECODE_MEMORY_MB,
    )


def run(args: argparse.Namespace) -> int:
    from serving.targeter import Targeter
    from targeting.rules_loader import load_rules
    from vision.pipeline import build_pipeline

    manifest = check(args)  # fail before loading models
    rules = load_rules(args.rules)
    cfg = pipeline_config_for_rules(args, rules)
    store = None
    if args.store:  # opened before the models: a file that is not a store fails in a second
        from serving.placement_store import PlacementStore

        store = PlacementStore(
            args.store,
            busy_timeout_s=min(DEFAULT_BUSY_TIMEOUT_S, args.store_wait / 4),  # a line per try
            write_wait_s=args.store_wait,
            on_wait=lambda line: print(f"onscreen scan: {line}", file=sys.stderr),
        )
    try:
        if args.ray:  # the models load on the cluster's actors, not here
            from serving.batch.ray_scan import run_ray_scan

            meaningful = cfg.semantic != "random"
            runner: Callable[..., BatchSummary] = partial(
                run_ray_scan, cfg, rules.root, rules.version, address=args.ray_address
            )
        else:
            pipeline = build_pipeline(cfg)
            for line in pipeline.notices:
                print(f"note: {line}", file=sys.stderr)
            meaningful = pipeline.meaningful
            runner = partial(
                run_scan, Targeter(pipeline, rules), decode_workers=args.decode_workers
            )
        summary = runner(
            args.media,
            out=args.out,
            today=args.date or date.today(),
            explain=args.explain,
            resume=args.resume,
            media_ids=args.media_id,
            progress=not args.quiet,
            store=store,
            decode=decode_limits(args),
            manifest=manifest,
        )
    finally:
        if store is not None:
            store.close()
    if args.parquet:
        write_parquet_from_jsonl(args.parquet, args.out)  # every media done, once (resume too)
    for line in summary_lines(summary, args.out):
        print(line, file=sys.stderr)
    if args.table:
        print_table(summary.results, meaningful=meaningful)
    # media done by an interrupted run count: the scan as a whole produced results
    return 0 if summary.ok or summary.skipped else 1


SUMMARY_CAMPAIGNS = 10
"""Campaigns listed by name in the final summary (the most placed first)."""


def summary_lines(summary: BatchSummary, out: Path) -> list[str]:
    """The final summary: media ok/failed, placements (per campaign), time and its split."""
    n_place = sum(len(r.placements) for r in summary.results)
    skipped = f", {len(summary.skipped)} already done" if summary.skipped else ""
    lines = [
        f"scanned {summary.ok} media ({summary.failed} failed{skipped}): "
        f"{n_place} placements -> {out}"
    ]
    per_campaign = Counter(p.campaign for r in summary.results for p in r.placements)
    if per_campaign:
        top = per_campaign.most_common(SUMMARY_CAMPAIGNS)
        more = len(per_campaign) - len(top)
        lines.append(
            "placements per campaign: "
            + ", ".join(f"{c} {n}" for c, n in top)
            + (f" (+{more} more campaigns)" if more > 0 else "")
        )
    t = summary.times
    if t.wall_s > 0 and summary.results:
        video = f", {t.video_s:.0f} s of video ({t.realtime:.1f}x realtime)" if t.video_s else ""
        line = f"time {format_duration(t.wall_s)}{video}, {t.keyframes} keyframes"
        if t.batches:  # the stages are timed where the models run in this process
            line += (
                f" in {t.batches} model calls (mean batch {t.mean_batch:.1f}); {t.split()} "
                "(overlapping)"
            )
        lines.append(line)
    return lines


def _reason_text(r: dict) -> str:
    what = next(
        (
            str(r[k])
            for k in ("brand", "prompt", "iab", "label", "category", "example", "text")
            if k in r
        ),
        "",
    )
    box = r.get("box")
    where = " [" + ", ".join(f"{v:.2f}" for v in box) + "]" if box else ""
    what = f'"{what}"' if r["kind"] == "text" else what
    return f"{r['kind']} {what} {r['score']:.2f} @ {r['t']:.1f}s{where}"


def print_table(results: list[MediaResult] | tuple[MediaResult, ...], *, meaningful: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, Console().width))
    table = Table(title="placements", show_lines=True)
    for col in ("media", "rank", "campaign", "segment", "score", "bid", "reasons"):
        table.add_column(col, overflow="fold")
    for r in results:
        if r.error:
            table.add_row(r.media, "", "[red]error[/red]", "", "", "", r.error)
            continue
        if not r.placements:
            table.add_row(r.media, "", "-", "", "", "", "no campaign fits")
        for p in r.placements:
            reasons, seen = [], set()
            for x in (x.to_json() for x in p.reasons):  # strongest evidence per clause
                key = (x["kind"], _reason_text(x).split(" @ ")[0].rsplit(" ", 1)[0])
                if key not in seen:
                    seen.add(key)
                    reasons.append(x)
            text = "\n".join(_reason_text(x) for x in reasons)
            if not meaningful and any(x["kind"] in ("concept", "iab", "example") for x in reasons):
                text += (
                    "\n[yellow](concept scores from random CLIP weights: not meaningful)[/yellow]"
                )
            table.add_row(
                p.media,
                str(p.rank),
                p.campaign,
                f"{p.start_s:.1f}–{p.end_s:.1f} s",
                f"{p.score:.2f}",
                f"{p.bid_cpm:g}",
                text,
            )
    console.print(table)
