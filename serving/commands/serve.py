"""``onscreen serve --rules DIR --port 50051``: the gRPC server for ad servers.

Every argument is checked before any model loads: a bad one (``--port 70000``, ``--max-batch
0``, ``--grace -1``, a missing ``--media-root``, an empty ``--api-key``...) exits 2 with one
line naming it. The rules are parsed once, here, and handed to the server.

Health answers NOT_SERVING at once and SERVING once the models are loaded and warmed up
("serving on HOST:PORT" is logged then). SIGTERM or SIGINT: NOT_SERVING, stop accepting calls,
let in-flight calls finish within ``--grace`` seconds, cancel what remains, exit 0 (within the
grace period plus about a second: a model batch still running in its thread is abandoned).
Models or rules that fail to load exit 2 with the reason (the CLI's handling of OnscreenError).

Visual search: ``--catalog DIR`` (a directory made by ``onscreen catalog build``) serves
VisualSearch and TargetImage's similar items from it, in the semantic model's visual-feature
space: the semantic model then loads even when the rules do not need it, a missing directory is
refused with the other arguments, a catalog built by another model fails the start (exit 2,
naming both spaces). Unsaved writes are snapshotted every ``--catalog-save-interval`` seconds
and on shutdown, so the write-ahead log replayed at each start stays short.

Auth: ``--api-key KEY``, ``--api-key-file PATH`` (the key stays out of ``ps``; one trailing
newline is stripped) or ``$ONSCREEN_API_KEY``; an empty key is refused (an unset variable must
not switch auth off). With none of them the server runs without auth.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

from serving.commands.model_options import add_model_options, pipeline_config_for_rules
from serving.rpc.config import (
    API_KEY_ENV,
    API_KEY_METADATA,
    DEFAULT_CATALOG_SAVE_INTERVAL_S,
    DEFAULT_GRACE_S,
    DEFAULT_HOST,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_WAIT_MS,
    DEFAULT_PORT,
    ServerConfig,
)
from serving.rpc.pixel_budget import DEFAULT_DECODE_BUDGET_BYTES
from vision.errors import StartupError

log = logging.getLogger("serving.serve")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve placements over gRPC (onscreen.v1) with batching, health and metrics",
        description=(
            "gRPC server: Targeting (TargetImage, ScanVideo, TargetStream, LookupPlacements), "
            "Vision (Analyze), VisualSearch (with --catalog), grpc.health.v1 and reflection. "
            "Rules are reloaded when the "
            "directory changes (a bad edit keeps the last good rules). SIGTERM drains and exits 0."
        ),
    )
    p.add_argument(
        "--rules", type=Path, required=True, help="rules directory (campaigns/, brands/)"
    )
    p.add_argument(
        "--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})"
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument("--media-root", type=Path, help="ScanVideo may read videos under this directory")
    p.add_argument("--store", type=Path, help="placement store (SQLite) for LookupPlacements")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    p.add_argument(
        "--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="frames per model call at most"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=DEFAULT_MAX_WAIT_MS,
        help="longest wait for batch-mates, milliseconds",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=DEFAULT_MAX_QUEUE,
        help="frames waiting for the model at most (more: RESOURCE_EXHAUSTED)",
    )
    p.add_argument(
        "--api-key",
        help=f"require this key in metadata '{API_KEY_METADATA}' (default: ${API_KEY_ENV}; none: off)",
    )
    p.add_argument(
        "--api-key-file",
        type=Path,
        help="read the API key from this file (not visible in ps; a trailing newline is dropped)",
    )
    p.add_argument(
        "--decode-budget-mb",
        type=int,
        default=DEFAULT_DECODE_BUDGET_BYTES // 2**20,
        help="decoded image bytes in flight at most, MiB (more: RESOURCE_EXHAUSTED at once)",
    )
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key)")
    p.add_argument("--tls-key", type=Path, help="PEM private key (with --tls-cert)")
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        help="seconds in-flight calls get to finish on shutdown",
    )
    p.add_argument("--no-watch", action="store_true", help="do not reload rules on changes")
    p.add_argument(
        "--catalog",
        type=Path,
        help="serve VisualSearch from this catalog directory (made by `onscreen catalog build`)",
    )
    p.add_argument(
        "--catalog-save-interval",
        type=float,
        default=DEFAULT_CATALOG_SAVE_INTERVAL_S,
        help="snapshot the catalog's unsaved writes this often, seconds (and on shutdown)",
    )
    add_model_options(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Every argument checked (StartupError naming it), the rules parsed once, before any model
    loads; the parsed rules travel in the config."""
    from serving.rpc.auth import resolve_api_key
    from targeting.rules_loader import load_rules

    api_key = resolve_api_key(args.api_key, args.api_key_file)
    try:  # the cheap checks first: a typo in a flag must not wait for the rules to parse
        base = ServerConfig(
            rules_dir=args.rules,
            host=args.host,
            port=args.port,
            media_root=args.media_root,
            store=args.store,
            metrics_port=args.metrics_port,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            api_key=api_key,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            grace_s=args.grace,
            watch_rules=not args.no_watch,
            decode_budget_bytes=args.decode_budget_mb * 2**20,
            catalog=args.catalog,
            catalog_save_interval_s=args.catalog_save_interval,
        )
    except ValueError as exc:
        raise StartupError(str(exc)) from exc
    rules = load_rules(args.rules)  # bad rules fail here, before any model loads
    # logos come from the rules snapshot (rebuilt on reload), never from the pipeline
    pipeline = pipeline_config_for_rules(
        args, rules, semantic_for="--catalog" if args.catalog is not None else None
    )
    return dataclasses.replace(base, pipeline=pipeline, rules=rules)


async def serve(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT, then drain; raises the load error if models or rules fail."""
    from serving.rpc.server import start_server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_server(config, wait_ready=False)
    try:
        stopper = asyncio.ensure_future(stop.wait())
        loader = asyncio.ensure_future(running.wait_ready())
        await asyncio.wait({stopper, loader}, return_when=asyncio.FIRST_COMPLETED)
        if loader.done() and loader.exception() is not None:
            stopper.cancel()
            raise loader.exception()  # type: ignore[misc]
        await stopper
        log.info("signal received")
    finally:
        await running.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    # a server's operational lines (listening, serving on, reloads, shutdown) are always shown
    serving_log = logging.getLogger("serving")
    if serving_log.getEffectiveLevel() > logging.INFO:
        serving_log.setLevel(logging.INFO)
    logging.getLogger("targeting.rules_watch").setLevel(logging.INFO)
    # not asyncio.run: it would wait (up to minutes) for the default executor's threads
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(serve(config))
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        print("onscreen serve: interrupted while draining", file=sys.stderr)
        code = 130
    # A model batch or a decode still running in a worker thread after the grace period would
    # hold the exit (Python joins those threads); its callers are gone, so leave now.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
