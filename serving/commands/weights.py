"""``onscreen weights list|fetch``: what model files are here, and getting the missing ones.

- ``list``: one row per manifest entry: name, kind, source, present, verified, licence.
  Fast after the first run (verification is cached by size and mtime).
- ``fetch [NAME...]``: fetch the named models (default: every one); one line per model,
  ``fetched`` / ``already present`` / ``FAILED: <reason>``. Exit 0 when every *required*
  model is present and verified afterwards, 1 otherwise. Without ``--required`` every
  requested model is required; with ``--required NAME...`` only those are (and they are
  fetched even if not named), the rest are best effort. That is how ``make weights`` fetches
  everything but fails only for the detector that PyPI always serves:
  ``onscreen weights fetch --required nudenet-320n``.
- ``fetch NAME --from FILE``: install a file obtained elsewhere (a mirror, another machine)
  after the same sha256 check, for hosts that cannot reach the model's source.

Exit code 2 (an unknown name, a bad manifest) is what ``serving.commands.cli`` gives our own errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vision.errors import WeightsError
from vision.weights import Manifest, WeightSpec, copy_verified, fetch, status

EXIT_OK = 0
EXIT_MISSING = 1
SOURCE_WIDTH = 60
"""Longest source shown in ``list`` before it is shortened with an ellipsis."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights",
        help="list and fetch model weights (weights/manifest.toml)",
        description="List and fetch the model weights named in weights/manifest.toml.",
    )
    p.add_argument("--manifest", type=Path, help="manifest file (default: $ONSCREEN_MANIFEST)")
    actions = p.add_subparsers(dest="weights_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="show each model: kind, source, present, verified")
    ls.set_defaults(func=run)
    fe = actions.add_parser(
        "fetch",
        help="download/copy models and check their sha256",
        description=(
            "Fetch models (default: all). Exit 0 when every required model is present and "
            "verified afterwards, 1 otherwise. Without --required, every requested model is "
            "required."
        ),
    )
    fe.add_argument("names", nargs="*", metavar="NAME", help="models to fetch (default: all)")
    fe.add_argument(
        "--required",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only these must succeed; the others are best effort",
    )
    fe.add_argument("--force", action="store_true", help="fetch again even if present")
    fe.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="install FILE as the (single) named model, after checking its sha256",
    )
    fe.set_defaults(func=run)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _list(manifest: Manifest) -> int:
    rows = [("NAME", "KIND", "SOURCE", "PRESENT", "VERIFIED", "LICENSE")]
    for spec in manifest.specs:
        st = status(spec, manifest.weights_dir)
        rows.append(
            (
                spec.name,
                spec.kind,
                _short(spec.source, SOURCE_WIDTH),
                _yes(st.present),
                _yes(st.verified),
                spec.license,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"weights directory: {manifest.weights_dir}")
    return EXIT_OK


def _fetch_one(spec: WeightSpec, manifest: Manifest, args: argparse.Namespace) -> bool:
    try:
        if args.from_file is not None:
            result = copy_verified(args.from_file, spec, manifest.weights_dir)
        else:
            result = fetch(spec, manifest.weights_dir, force=args.force)
    except WeightsError as exc:
        print(f"{spec.name}: FAILED: {exc}")
        return False
    if result.action == "present":
        print(f"{spec.name}: already present ({result.path})")
    else:
        mib = result.size / 2**20
        print(f"{spec.name}: fetched {mib:.1f} MiB in {result.seconds:.1f} s -> {result.path}")
    return True


def _fetch(manifest: Manifest, args: argparse.Namespace) -> int:
    for name in [*args.names, *(args.required or [])]:
        manifest.get(name)  # unknown names: WeightsError listing the known ones (exit 2)
    if args.from_file is not None and len(args.names) != 1:
        raise WeightsError("--from FILE installs one model: name exactly one NAME")
    requested = list(dict.fromkeys(args.names or manifest.names))
    required = list(dict.fromkeys(args.required if args.required is not None else requested))
    for name in required:
        if name not in requested:
            requested.append(name)
    for name in requested:
        _fetch_one(manifest.get(name), manifest, args)
    missing = [n for n in required if not status(manifest.get(n), manifest.weights_dir).verified]
    optional_failed = [
        n
        for n in requested
        if n not in required and not status(manifest.get(n), manifest.weights_dir).verified
    ]
    if optional_failed:
        print(f"best effort, not fetched: {', '.join(optional_failed)}")
    if missing:
        print(f"required and missing: {', '.join(missing)}")
        return EXIT_MISSING
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.manifest)
    if args.weights_action == "list":
        return _list(manifest)
    return _fetch(manifest, args)
