"""Named limits and defaults of ``onscreen serve``, and the ``ServerConfig`` that carries them.

Every limit is finite and has its unit in its name or docstring. The gRPC receive limit is
set deliberately: an image (``vision.limits.MAX_IMAGE_BYTES``, 20 MiB) plus room for the rest
of the message; videos never travel in one message (chunked upload, or a path under
``--media-root``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from serving.rpc.batcher import MAX_BATCH_LIMIT, MAX_QUEUE_LIMIT, MAX_WAIT_LIMIT_MS
from serving.rpc.pixel_budget import (
    DEFAULT_DECODE_BUDGET_BYTES,
    MAX_DECODE_BUDGET_BYTES,
    MIN_DECODE_BUDGET_BYTES,
)
from vision.limits import MAX_IMAGE_BYTES
from vision.pipeline import PipelineConfig

if TYPE_CHECKING:
    from targeting.rules_loader import RuleSet

DEFAULT_HOST = "127.0.0.1"
"""Interface bound by default: loopback; pass ``--host 0.0.0.0`` in a container."""
DEFAULT_PORT = 50051
"""The conventional gRPC port. 0 picks a free port (logged), for tests."""

MESSAGE_SLACK_BYTES = 1024 * 1024
"""Room for the other fields of a request next to its image bytes (ids, options), bytes."""
MAX_IMAGE_MESSAGE_BYTES = MAX_IMAGE_BYTES + MESSAGE_SLACK_BYTES
"""gRPC max receive message size, bytes. An image up to this size reaches the decoder, which
refuses anything over MAX_IMAGE_BYTES with INVALID_ARGUMENT naming the limit; a message over it
is refused by gRPC itself (RESOURCE_EXHAUSTED) before it is buffered."""
MAX_SEND_MESSAGE_BYTES = 4 * 1024 * 1024
"""gRPC max send message size, bytes: responses are placements and facts, never pixels."""
MAX_UPLOAD_CHUNK_BYTES = 1024 * 1024
"""Largest ScanVideo upload chunk accepted, bytes (the contract says 1 MiB)."""

DEFAULT_MAX_BATCH = 16
"""Frames per model call the micro-batcher gathers at most."""
DEFAULT_MAX_WAIT_MS = 5.0
"""Longest a request waits for batch-mates before a partial batch runs, milliseconds."""
DEFAULT_MAX_QUEUE = 256
"""Frames waiting for the model at most; one more is RESOURCE_EXHAUSTED at once."""
DEFAULT_GRACE_S = 10.0
"""On SIGTERM/SIGINT, how long in-flight calls may take to finish, seconds."""
MAX_GRACE_S = 600.0
"""Largest grace period accepted, seconds."""

DEFAULT_MAX_PLACEMENTS = 20
"""Placements returned for an image when the request says 0."""
MAX_PLACEMENTS = 1000
"""Most placements returned for one image."""
MAX_CAMPAIGN_FILTER = 1000
"""Most campaign ids in a request's filter."""

SCAN_PROGRESS_EVERY_S = 5.0
"""ScanVideo sends a progress message every this many seconds of media time."""
MAX_STREAMS_PER_CALL = 16
"""Most live streams one TargetStream call may interleave."""
STREAM_WINDOW_S = 300.0
"""Media time of a live stream kept for matching, seconds: older keyframes are forgotten (a
segment longer than this is reported in pieces), which bounds memory per stream."""

KEEPALIVE_TIME_MS = 30_000
"""Server pings an idle connection this often, milliseconds (finds dead load balancer links)."""
KEEPALIVE_TIMEOUT_MS = 10_000
"""A ping unanswered this long closes the connection, milliseconds."""
MIN_CLIENT_PING_INTERVAL_MS = 10_000
"""Clients may ping at most this often, milliseconds (more is a GOAWAY)."""
MAX_CONCURRENT_STREAMS = 1024
"""HTTP/2 streams (calls) per connection at most."""

DEFAULT_SIMILAR_ITEMS = 10
"""Similar items returned when a SimilarItems request says k = 0."""
MAX_SIMILAR_ITEMS = 100
"""Most similar items one request may ask for (SimilarItems.k, TargetImage's
similar_items_count)."""
MAX_UPSERT_ITEMS = 256
"""Most items in one UpsertItems call (the contract says 256)."""
MAX_DELETE_IDS = 1000
"""Most ids in one DeleteItems call."""
DEFAULT_CATALOG_SAVE_INTERVAL_S = 60.0
"""How often a served catalog with unsaved writes is snapshotted, seconds: each snapshot starts
an empty write-ahead log, so the log (replayed at every open) stays small."""
MAX_CATALOG_SAVE_INTERVAL_S = 86_400.0
"""Longest snapshot interval accepted, seconds (a day)."""
MIN_CATALOG_SAVE_INTERVAL_S = 1.0
"""Shortest snapshot interval accepted, seconds (a snapshot rewrites the whole catalog)."""

API_KEY_ENV = "ONSCREEN_API_KEY"
"""Environment variable holding the shared API key when ``--api-key`` is not given."""
API_KEY_METADATA = "x-api-key"
"""Request metadata key the API key travels in."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``start_server`` needs. Paths are as given; ``rules_dir`` is required.

    ``media_root``: ScanVideo paths resolve under it (None: by-path scans are refused).
    ``store``: the placement store file (None: LookupPlacements is FAILED_PRECONDITION).
    ``metrics_port``: Prometheus HTTP port (None: off; 0: a free port).
    ``watch_rules``: hot-reload the rules directory. ``warmup``: run one dummy batch before
    reporting SERVING (so the first request does not pay for lazy initialisation).
    ``decode_budget_bytes``: decoded image bytes in flight at most (``serving.rpc.pixel_budget``).
    ``catalog``: a catalog directory made by ``onscreen catalog build`` that VisualSearch (and
    TargetImage's similar items) answer from, in the semantic model's visual-feature space
    (None: those RPCs are UNIMPLEMENTED). ``catalog_save_interval_s``: how often unsaved catalog
    writes are snapshotted (and once more on shutdown).
    ``rules``: ``rules_dir`` already parsed (``serve`` parses it once, to choose the models);
    None: the server parses it. Every value is checked here, before any model loads
    (ValueError naming the option).
    """

    rules_dir: Path
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    media_root: Path | None = None
    store: Path | None = None
    metrics_port: int | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    max_queue: int = DEFAULT_MAX_QUEUE
    api_key: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    grace_s: float = DEFAULT_GRACE_S
    watch_rules: bool = True
    warmup: bool = True
    decode_budget_bytes: int = DEFAULT_DECODE_BUDGET_BYTES
    catalog: Path | None = None
    catalog_save_interval_s: float = DEFAULT_CATALOG_SAVE_INTERVAL_S
    rules: RuleSet | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (0 <= self.port <= 65535):
            raise ValueError(f"--port must be in 0..65535, got {self.port}")
        if self.metrics_port is not None and not (0 <= self.metrics_port <= 65535):
            raise ValueError(f"--metrics-port must be in 0..65535, got {self.metrics_port}")
        if not (0 <= self.grace_s <= MAX_GRACE_S) or math.isnan(self.grace_s):
            raise ValueError(f"--grace must be in 0..{MAX_GRACE_S:g} s, got {self.grace_s:g}")
        if not (1 <= self.max_batch <= MAX_BATCH_LIMIT):
            raise ValueError(f"--max-batch must be in 1..{MAX_BATCH_LIMIT}, got {self.max_batch}")
        if not (1 <= self.max_queue <= MAX_QUEUE_LIMIT):
            raise ValueError(f"--max-queue must be in 1..{MAX_QUEUE_LIMIT}, got {self.max_queue}")
        if not (0 <= self.max_wait_ms <= MAX_WAIT_LIMIT_MS) or math.isnan(self.max_wait_ms):
            raise ValueError(
                f"--max-wait-ms must be in 0..{MAX_WAIT_LIMIT_MS:g}, got {self.max_wait_ms:g}"
            )
        if not (MIN_DECODE_BUDGET_BYTES <= self.decode_budget_bytes <= MAX_DECODE_BUDGET_BYTES):
            raise ValueError(
                f"--decode-budget-mb must be in {math.ceil(MIN_DECODE_BUDGET_BYTES / 2**20)}.."
                f"{MAX_DECODE_BUDGET_BYTES // 2**20} (MiB), got {self.decode_budget_bytes / 2**20:g}"
            )
        if self.media_root is not None and not self.media_root.is_dir():
            raise ValueError(f"--media-root {self.media_root} is not a directory")
        lo, hi = MIN_CATALOG_SAVE_INTERVAL_S, MAX_CATALOG_SAVE_INTERVAL_S
        if not (lo <= self.catalog_save_interval_s <= hi):  # NaN fails too
            raise ValueError(
                f"--catalog-save-interval must be in {lo:g}..{hi:g} s, "
                f"got {self.catalog_save_interval_s:g}"
            )
        if self.catalog is not None:
            _check_catalog_dir(self.catalog)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both --tls-cert and --tls-key (or neither)")
        if self.api_key is not None and not self.api_key:
            raise ValueError("the API key must not be empty (leave it out to disable auth)")


def _check_catalog_dir(path: Path) -> None:
    """A served catalog must exist already: the server never creates one (an empty catalog
    from a typo in the path would answer every search with nothing)."""
    from vision.catalog.snapshot import read_manifest
    from vision.errors import CatalogError

    build = "build it with `onscreen catalog build CATALOG.jsonl --out DIR`"
    if not path.is_dir():
        raise ValueError(f"--catalog {path} is not a directory: {build}")
    try:
        manifest = read_manifest(path)
    except CatalogError as exc:
        raise ValueError(f"--catalog {path}: {exc}") from exc
    if manifest is None:
        raise ValueError(f"--catalog {path} is not a catalog (no MANIFEST.json): {build}")
