"""Prometheus metrics of the gRPC server, in a registry of its own.

Why a registry per server: tests start several servers in one process, and the default global
registry refuses a second metric of the same name. ``ServerMetrics.serve(port, host)`` exposes
the registry over HTTP (``prometheus_client.start_http_server``) on ``--metrics-port``.

Metrics (names are the contract for dashboards):

- ``onscreen_requests_total{method, code}``: finished RPCs by gRPC method and status code name.
- ``onscreen_request_seconds{method}``: RPC latency histogram, seconds.
- ``onscreen_batch_size``: frames per model call (histogram, buckets 1..1024).
- ``onscreen_batch_seconds``: model call time, seconds.
- ``onscreen_queue_depth``: frames waiting for the model now (gauge).
- ``onscreen_dropped_total{reason}``: frames dropped before the model (deadline, cancelled).
- ``onscreen_ready``: 1 when health is SERVING, else 0.
- ``onscreen_rules_reloads_total{result}``: rules reloads by outcome (ok, rejected).
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Request latency buckets, seconds: sub-ms lookups up to whole-video scans."""
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Batch size buckets, frames."""


class ServerMetrics:
    """The server's metrics; the batcher's hooks are ``observe_batch``/``set_queue_depth``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "onscreen_requests", "Finished RPCs by method and status code", ["method", "code"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "onscreen_request_seconds", "RPC latency in seconds", ["method"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "onscreen_batch_size", "Frames per model call", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "onscreen_batch_seconds", "Model call time in seconds", buckets=LATENCY_BUCKETS_S,
            registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("onscreen_queue_depth", "Frames waiting for the model", registry=r)
        self.dropped = Counter(
            "onscreen_dropped", "Frames dropped before the model", ["reason"], registry=r
        )
        self.ready = Gauge("onscreen_ready", "1 when health is SERVING", registry=r)
        self.reloads = Counter(
            "onscreen_rules_reloads", "Rules reloads by outcome", ["result"], registry=r
        )
        self._http: object | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method=method, code=code).inc()
        self.latency.labels(method=method).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def observe_dropped(self, reason: str) -> None:
        self.dropped.labels(reason=reason).inc()

    def serve(self, port: int, host: str) -> int:
        """Serve ``/metrics`` over HTTP on ``host:port`` (0: a free port); returns the port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http, self._thread = server, thread
        self.port = int(server.server_port)
        log.info("metrics on http://%s:%d/metrics", host, self.port)
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()  # type: ignore[attr-defined]
            self._http.server_close()  # type: ignore[attr-defined]
            self._http = None
