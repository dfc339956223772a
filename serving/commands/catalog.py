"""``onscreen catalog build|query|stats``: visual search over a catalog of items, from a shell.

Items are embedded with the semantic model's visual features (``--semantic auto|clip|lite``,
as for analyze/scan/serve; ``vision.catalog.VisualFeatures``). ``register(sub, model_factory)``
also takes any other ``model_factory(args) -> VisualModel``, which the tests use.

Exit codes: 0 success; 1 ``build`` finished but some lines or images were skipped (listed on
stderr); 2 an ``OnscreenError`` (``serving.cli``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from vision.catalog import Catalog, CatalogFilter, VisualFeatures, VisualModel, shop_the_look
from vision.catalog.build import DEFAULT_BUILD_BATCH, build_catalog
from vision.catalog.limits import DEFAULT_DEDUP_COSINE
from vision.image_decode import read_image_file

ModelFactory = Callable[[argparse.Namespace], VisualModel]


def semantic_visual_model(args: argparse.Namespace) -> VisualModel:
    """The semantic model the flags name, as the catalog's visual feature."""
    from serving.commands.model_options import semantic_of_flags
    from vision.semantic import load_semantic_model

    model = load_semantic_model(
        semantic_of_flags(args.semantic, args.random_weights), device=args.device
    )
    assert model is not None
    return VisualFeatures(model)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    from serving.commands.model_options import SEMANTIC_FLAG_CHOICES

    g = p.add_argument_group("model")
    g.add_argument(
        "--semantic",
        choices=[c for c in SEMANTIC_FLAG_CHOICES if c != "off"],
        default=None,
        help="whose visual features: auto (default: clip when its weights are fetched, else "
        "lite), clip or lite; an index answers only to the model that built it",
    )
    g.add_argument(
        "--random-weights",
        action="store_true",
        help="CLIP with random weights (tests/benchmarks only)",
    )
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")


def register(
    sub: argparse._SubParsersAction, model_factory: ModelFactory = semantic_visual_model
) -> None:
    p = sub.add_parser(
        "catalog",
        help="build, query and inspect a visual-search catalog index",
        description="Visual search: which catalog items look like an image (or its regions).",
    )
    verbs = p.add_subparsers(dest="catalog_command", metavar="VERB", required=True)

    b = verbs.add_parser("build", help="build or update an index directory from catalog JSONL")
    b.add_argument("catalog", type=Path, help="catalog JSONL: one item a line (id, image, ...)")
    b.add_argument("--out", type=Path, required=True, help="index directory (created if missing)")
    b.add_argument("--batch", type=int, default=DEFAULT_BUILD_BATCH, help="images per model call")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_flags(b)
    b.set_defaults(func=lambda args: run_build(args, model_factory))

    q = verbs.add_parser("query", help="items most like an image")
    q.add_argument("index", type=Path, help="index directory made by `catalog build`")
    q.add_argument("image", type=Path, help="query image (JPEG/PNG/WebP)")
    q.add_argument("-k", type=int, default=10, help="results (per region with --regions)")
    q.add_argument("--regions", action="store_true", help="shop the look: search per region")
    q.add_argument("--category", action="append", help="only this category (repeatable)")
    q.add_argument("--advertiser", action="append", help="only this advertiser (repeatable)")
    q.add_argument("--min-price", type=float)
    q.add_argument("--max-price", type=float)
    q.add_argument("--tag", action="append", help="items carrying this tag (repeatable, all)")
    q.add_argument(
        "--dedup",
        type=float,
        default=DEFAULT_DEDUP_COSINE,
        help=f"collapse results more alike than this cosine (default {DEFAULT_DEDUP_COSINE}; 1 = off)",
    )
    q.add_argument("--json", action="store_true", help="print JSON")
    _add_model_flags(q)
    q.set_defaults(func=lambda args: run_query(args, model_factory))

    s = verbs.add_parser("stats", help="what an index directory holds")
    s.add_argument("index", type=Path)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_stats)


def run_build(args: argparse.Namespace, model_factory: ModelFactory) -> int:
    model = model_factory(args)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(unit="item", dynamic_ncols=True, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        report = build_catalog(
            args.catalog, args.out, model, batch_size=args.batch, progress=progress
        )
    finally:
        if bar is not None:
            bar.close()
    for problem in report.problems:
        print(f"{args.catalog}: {problem}", file=sys.stderr)
    print(
        f"{args.out}: {report.indexed} item(s) indexed, {report.unchanged} unchanged, "
        f"{len(report.problems)} skipped"
    )
    return 1 if report.problems else 0


def _filter(args: argparse.Namespace) -> CatalogFilter | None:
    flt = CatalogFilter(
        categories=frozenset(args.category) if args.category else None,
        advertisers=frozenset(args.advertiser) if args.advertiser else None,
        min_price=args.min_price,
        max_price=args.max_price,
        tags=frozenset(args.tag) if args.tag else None,
    )
    return None if flt.is_empty() else flt


def run_query(args: argparse.Namespace, model_factory: ModelFactory) -> int:
    image = read_image_file(args.image)
    model = model_factory(args)
    dedup = None if args.dedup >= 1.0 else args.dedup
    with Catalog.for_model(args.index, model, readonly=True) as cat:
        if args.regions:
            regions = shop_the_look(
                cat, image, model, k=args.k, filter=_filter(args), dedup_cosine=dedup
            )
            rows = [
                {**hit.to_json(), "box": [round(v, 4) for v in region.box], "region": region.source}
                for region in regions
                for hit in region.hits
            ]
        else:
            hits = cat.search_images(
                [image], model, args.k, filter=_filter(args), dedup_cosine=dedup
            )
            rows = [h.to_json() for h in hits[0]]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    last_box = None
    for row in rows:
        if "box" in row and row["box"] != last_box:
            last_box = row["box"]
            print(f"region {row['region']} {row['box']}:")
        indent = "  " if "box" in row else ""
        title = f"  {row['title']}" if row.get("title") else ""
        print(f"{indent}{row['score']:.3f}  {row['id']}{title}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from vision.catalog.snapshot import read_manifest
    from vision.errors import CatalogError

    manifest = read_manifest(Path(args.index))
    if manifest is None:
        raise CatalogError(f"{args.index} is not a catalog (no MANIFEST.json)")
    with Catalog.open(
        args.index, space_id=manifest.space_id, dim=manifest.dim, readonly=True
    ) as cat:
        stats = cat.stats().to_json()
    if args.json:
        json.dump(stats, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for key, value in stats.items():
            print(f"{key:12} {value}")
    return 0
