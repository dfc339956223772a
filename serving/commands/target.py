"""``onscreen target IMAGE --server HOST:PORT``: a quick check of a running server."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from serving.rpc.config import API_KEY_ENV, DEFAULT_PORT


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server", default=f"localhost:{DEFAULT_PORT}", help="host:port of onscreen serve"
    )
    p.add_argument("--api-key", default=None, help=f"shared API key (default: ${API_KEY_ENV})")
    p.add_argument("--ca", type=Path, help="PEM root certificate to trust (TLS)")
    p.add_argument("--tls", action="store_true", help="use TLS with the system's roots")
    p.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds")


def _client(args: argparse.Namespace):  # noqa: ANN202
    from serving.client import OnscreenClient

    return OnscreenClient(
        args.server,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        root_certificates=args.ca.read_bytes() if args.ca else None,
        tls=args.tls,
        timeout_s=args.timeout,
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("target", help="ask a running server for an image's placements")
    p.add_argument("image", type=Path, help="JPEG/PNG/WebP file")
    p.add_argument("--media-id", default="", help="id to name the image by (default: file name)")
    p.add_argument("--json", action="store_true", help="print the placements as JSON lines")
    _client_options(p)
    p.set_defaults(func=run)

    h = sub.add_parser("health", help="ask a running server whether it is serving (exit 0 if so)")
    h.add_argument("--service", default="", help="service name (default: the whole server)")
    _client_options(h)
    h.set_defaults(func=run_health)


def run(args: argparse.Namespace) -> int:
    from vision.errors import MediaError

    if not args.image.is_file():
        raise MediaError(f"{args.image}: no such file")
    with _client(args) as client:
        result = client.target_image(
            args.image.read_bytes(), media_id=args.media_id or args.image.name
        )
    if args.json:
        for p in result.placements:
            print(json.dumps(p.to_json()))
        return 0
    if not result.placements:
        print(f"{args.image.name}: no campaign fits (rules {result.rules_version[:12]})")
    for p in result.placements:
        why = "; ".join(f"{r.kind} {r.what} {r.score:.2f}" for r in p.reasons)
        print(f"{p.rank:>2}. {p.campaign:30} score {p.score:.2f}  bid {p.bid_cpm:g}  because {why}")
    return 0


def run_health(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.health(args.service)
    print(status)
    return 0 if status == "SERVING" else 1
