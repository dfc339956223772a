"""The gRPC server of ``onscreen serve``: lifecycle and wiring.

Layout (the grpc examples' habit): ``serving.rpc.servicers`` holds one thin servicer class per
service, delegating to the plain functions of ``serving.rpc.handlers``; ``serving.rpc.engine`` the loaded
state; ``serving.rpc.auth`` the API key; this module the ``_configure_*`` helpers that wire health,
reflection, auth and TLS in ``start_server``, and ``RunningServer``. Every exception goes through
``serving.rpc.status.status_for`` (nothing escapes as UNKNOWN).

Request path of an image: admission (queue slots, and the decode budget priced from the header:
``serving.rpc.pixel_budget``) -> bytes decoded on a CPU thread and shrunk for the models ->
one ``(Frame, RulesSnapshot)`` -> the shared ``MicroBatcher`` whose function is
``engine.analyze_isolating`` (ONE model thread: the rule-independent models over the batch, then
each frame's logos with its snapshot's matcher) -> ``FrameFacts`` -> ``Targeter.place`` with the
same snapshot -> placements. ScanVideo keyframes and TargetStream frames go through the same
batcher, so they share model batches with image requests. With ``--catalog`` the catalog's
visual features have a batcher of their own on the SAME model thread
(``serving.rpc.served_catalog``): VisualSearch images and TargetImage's similar items batch
together there, and no model ever runs on two threads.

Rules: parsed once (``ServerConfig.rules``, what ``serve`` already parsed to choose the models,
or the directory when absent); every version, the first included, is built into one immutable
``RulesSnapshot`` (rules, concept index, logo matcher from the rules' brands, version) before it
serves. A reload whose snapshot cannot be built (a brand image over the pixel limit, a corrupt
logo, a concept CLIP cannot embed) is rejected as a whole, the last good snapshot keeps serving,
and it is counted as ``onscreen_rules_reloads_total{result="rejected"}``.

Lifecycle: ``start_server`` binds the port and starts serving health at once (NOT_SERVING),
then loads the models and rules in a thread, warms the models up with one dummy batch and
switches health to SERVING ("serving on HOST:PORT" is logged). Calls that need the models
before that are UNAVAILABLE. ``RunningServer.stop`` sets NOT_SERVING, stops accepting calls,
lets in-flight calls finish within the grace period and cancels what remains at its end, then
closes the batcher (what it still holds fails), the rules watcher, the catalog (after a last
snapshot of its unsaved writes), the store and the metrics endpoint; the whole stop takes at most the grace period plus a second.

Time: rules' flight dates are checked against the server's local date (``date.today()``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serving._proto.onscreen.v1 import (
    targeting_pb2,
    targeting_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
    visual_search_pb2,
    visual_search_pb2_grpc,
)
from serving.placement_store import PlacementStore, on_readonly_filesystem
from serving.rpc.auth import HEALTH_SERVICE, ApiKeyInterceptor
from serving.rpc.batcher import MicroBatcher
from serving.rpc.config import (
    KEEPALIVE_TIME_MS,
    KEEPALIVE_TIMEOUT_MS,
    MAX_CONCURRENT_STREAMS,
    MAX_IMAGE_MESSAGE_BYTES,
    MAX_SEND_MESSAGE_BYTES,
    MIN_CLIENT_PING_INTERVAL_MS,
    ServerConfig,
)
from serving.rpc.engine import Engine, ModelItem, ServerCore, analyze_isolating
from serving.rpc.malformed import TolerantDeserializerInterceptor
from serving.rpc.metrics import ServerMetrics
from serving.rpc.pixel_budget import PixelBudget
from serving.rpc.served_catalog import ServedCatalog, features_isolating
from serving.rpc.servicers import TargetingServicer, VisionServicer, VisualSearchServicer
from serving.targeter import Targeter
from targeting.rules_loader import RuleSet
from targeting.rules_watch import ReloadResult, RulesHolder
from vision.errors import StartupError
from vision.pipeline import Pipeline, build_pipeline
from vision.types import Frame, FrameFacts

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    targeting_pb2.DESCRIPTOR.services_by_name["Targeting"].full_name,
    vision_pb2.DESCRIPTOR.services_by_name["Vision"].full_name,
    visual_search_pb2.DESCRIPTOR.services_by_name["VisualSearch"].full_name,
)
"""Fully qualified names of the served services (health is reported for each and for "")."""
REFLECTION_SERVICE = reflection.SERVICE_NAME
WARMUP_IMAGE_SIDE_PX = 320
"""Side of the grey warm-up frame, pixels (enough to run every model once)."""
STOP_SLACK_S = 1.0
"""After the grace period, how long closing the batcher, watcher and store may take, seconds."""
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----")
_PEM_KEY = re.compile(rb"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----")


# --- server --------------------------------------------------------------------------------------


def _server_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_IMAGE_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
        # a second server on the same port must fail, not silently share it
        ("grpc.so_reuseport", 0),
    ]


def _configure_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def _set_health(servicer: health.aio.HealthServicer, status: int) -> None:
    for name in ("", *SERVICE_NAMES):
        await servicer.set(name, status)


def _configure_reflection(server: grpc.aio.Server) -> None:
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, HEALTH_SERVICE, REFLECTION_SERVICE), server
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from exc


def tls_credentials(cert: Path, key: Path) -> grpc.ServerCredentials:
    """Server credentials from PEM files, each checked first: a file that is not PEM, or a key
    that does not belong to the certificate, is a StartupError saying so (grpc itself would
    only fail later at bind time, which reads like a port problem)."""
    cert_pem, key_pem = _read(cert, "certificate"), _read(key, "key")
    if not _PEM_CERT.search(cert_pem):
        raise StartupError(
            f"--tls-cert {cert} is not a PEM certificate (no '-----BEGIN CERTIFICATE-----')"
        )
    if not _PEM_KEY.search(key_pem):
        raise StartupError(
            f"--tls-key {key} is not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----')"
        )
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise StartupError(
            f"--tls-cert {cert} / --tls-key {key} cannot be used together: {exc.reason or exc}"
        ) from exc
    return grpc.ssl_server_credentials([(key_pem, cert_pem)])


def _configure_port(server: grpc.aio.Server, config: ServerConfig) -> int:
    address = f"{config.host}:{config.port}"
    creds = None
    if config.tls_cert is not None and config.tls_key is not None:
        creds = tls_credentials(config.tls_cert, config.tls_key)
    try:
        port = (
            server.add_secure_port(address, creds)
            if creds is not None
            else server.add_insecure_port(address)
        )
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {address}: {exc} (port in use?)") from exc
    if not port:
        raise StartupError(f"cannot listen on {address} (port in use?)")
    return port


@dataclass
class RunningServer:
    """A started server. ``port`` is the bound port (the real one when 0 was asked for)."""

    server: grpc.aio.Server
    core: ServerCore
    health: health.aio.HealthServicer
    port: int
    host: str
    load_error: BaseException | None = None
    _load_task: asyncio.Task[None] | None = None
    _stopped: bool = False
    _model_thread: ThreadPoolExecutor | None = None
    _catalog: ServedCatalog | None = None
    """The catalog once opened (closed on stop even when loading failed after opening it)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def metrics(self) -> ServerMetrics:
        return self.core.metrics

    @property
    def engine(self) -> Engine | None:
        return self.core.engine_or_none

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until SERVING; raise the load error if models or rules failed to load."""
        assert self._load_task is not None
        await asyncio.wait_for(asyncio.shield(self._load_task), timeout_s)
        if self.load_error is not None:
            raise self.load_error

    async def _load(self, pipeline_factory: Callable[[], Pipeline] | None) -> None:
        config = self.core.config
        try:
            factory = pipeline_factory or functools.partial(build_pipeline, config.pipeline)
            pipeline = await asyncio.to_thread(factory)
            for line in pipeline.notices:
                log.warning("%s", line)
            targeter, holder = await asyncio.to_thread(
                _load_rules, pipeline, config.rules_dir, self.core.metrics, config.rules
            )
            m = self.core.metrics
            # ONE model thread: the targeting batcher and the catalog's features batcher take
            # turns on it (the models are not thread-safe)
            self._model_thread = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="onscreen-model"
            )
            batcher: MicroBatcher[ModelItem, FrameFacts] = MicroBatcher(
                functools.partial(analyze_isolating, targeter),
                max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
                max_queue=config.max_queue, name="model", on_batch=m.observe_batch,
                on_queue_depth=m.set_queue_depth, on_dropped=m.observe_dropped,
                executor=self._model_thread,
            )  # fmt: skip
            budget = PixelBudget(config.decode_budget_bytes)
            engine = Engine(pipeline, targeter, batcher, holder, budget)
            if config.catalog is not None:
                engine.catalog = await _open_catalog(pipeline, config, self._model_thread)
                self._catalog = engine.catalog
            if config.warmup:
                t0 = time.perf_counter()
                side = WARMUP_IMAGE_SIDE_PX
                grey = np.full((side, side, 3), 127, np.uint8)
                frame = Frame("warmup", 0.0, grey, reason="image")
                await batcher.submit((frame, targeter.snapshot))
                if engine.catalog is not None:
                    await engine.catalog.features.submit(grey)
                log.info("models warmed up in %.2f s", time.perf_counter() - t0)
            if engine.catalog is not None:
                engine.catalog.start()
            if config.watch_rules:
                engine.watcher = holder.start_watching()
            self.core.engine_or_none = engine
            if self._stopped:
                return
            await _set_health(self.health, health_pb2.HealthCheckResponse.SERVING)
            m.ready.set(1)
            log.info("serving on %s", self.address)
        except Exception as exc:
            self.load_error = exc
            log.error("the server could not load its models or rules: %s", exc)

    async def stop(self, grace_s: float | None = None) -> None:
        """NOT_SERVING, stop accepting calls, let in-flight calls finish within ``grace_s``
        (default: the config's), then release the batcher, watcher, store and metrics."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.core.config.grace_s if grace_s is None else grace_s
        log.info("shutting down: draining in-flight calls for up to %.1f s", grace)
        deadline = time.monotonic() + grace
        self.core.metrics.ready.set(0)
        await self.health.enter_graceful_shutdown()
        # grpc cancels the calls still running when the grace period ends
        await self.server.stop(grace)
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        engine = self.core.engine_or_none
        if engine is not None:
            left = max(0.0, deadline - time.monotonic()) + STOP_SLACK_S
            await engine.batcher.close(timeout_s=left)
            if engine.watcher is not None:
                await asyncio.to_thread(engine.watcher.stop)
        if self._catalog is not None:  # its last writes are snapshotted, its lock released
            left = max(0.0, deadline - time.monotonic()) + STOP_SLACK_S
            await self._catalog.close(timeout_s=left)
        if self._model_thread is not None:  # both batchers are closed: nothing more comes
            self._model_thread.shutdown(wait=False, cancel_futures=True)
        if self.core.store is not None:
            self.core.store.close()
        self.core.metrics.close()
        log.info("stopped")


async def _open_catalog(
    pipeline: Pipeline, config: ServerConfig, model_thread: ThreadPoolExecutor
) -> ServedCatalog:
    """The ``--catalog`` directory opened in the semantic model's visual-feature space (a
    catalog built by another model is a CatalogError naming both spaces), with its features
    batcher on the model thread."""
    from vision.catalog import Catalog, VisualFeatures

    assert config.catalog is not None
    if pipeline.semantic is None:
        raise StartupError(
            "--catalog needs the semantic model's visual features, but the semantic model is off"
        )
    model = VisualFeatures(pipeline.semantic)
    catalog = await asyncio.to_thread(Catalog.for_model, config.catalog, model)
    features: MicroBatcher[np.ndarray, np.ndarray] = MicroBatcher(
        functools.partial(features_isolating, model),
        max_batch=config.max_batch, max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
        name="catalog model", executor=model_thread,
    )  # fmt: skip
    served = ServedCatalog(catalog, model, features, config.catalog_save_interval_s)
    log.info("catalog %s: %d item(s) in space %s", config.catalog, len(catalog), catalog.space_id)
    return served


def _load_rules(
    pipeline: Pipeline, rules_dir: Path, metrics: ServerMetrics, rules: RuleSet | None = None
) -> tuple[Targeter, RulesHolder]:
    """The Targeter and its RulesHolder: every rules version is built into a snapshot before it
    serves (a snapshot that cannot be built vetoes the reload); each reload's outcome is counted
    (``onscreen_rules_reloads_total{result}``). ``rules``: the directory already parsed."""
    box: list[Targeter] = []

    def on_change(new: RuleSet) -> None:
        if not box:
            box.append(Targeter(pipeline, new))
        else:
            box[0].swap(new)

    def on_reload(result: ReloadResult) -> None:
        metrics.reloads.labels(result="applied" if result.ok else "rejected").inc()

    holder = RulesHolder(rules_dir, on_change=on_change, on_reload=on_reload, initial=rules)
    return box[0], holder


def open_store(path: Path) -> PlacementStore:
    """The server's placement store: read-write, or read-only (with a warning) when its file
    lies on a read-only mount, so a server whose store disk went read-only still answers
    lookups; ScanVideo with store=true is then refused with FAILED_PRECONDITION."""
    if on_readonly_filesystem(path):
        log.warning(
            "placement store %s is on a read-only file system: serving lookups from it, "
            "ScanVideo with store=true will be refused",
            path,
        )
        return PlacementStore(path, readonly=True)
    return PlacementStore(path)


async def start_server(
    config: ServerConfig,
    *,
    pipeline_factory: Callable[[], Pipeline] | None = None,
    wait_ready: bool = True,
) -> RunningServer:
    """Bind, serve health (NOT_SERVING) at once, load models and rules, then SERVING.

    ``pipeline_factory``: builds the Pipeline (default: ``build_pipeline(config.pipeline)``);
    tests pass one that returns an already loaded pipeline. With ``wait_ready`` (default) this
    returns once SERVING and raises if loading failed; otherwise at once (see
    ``RunningServer.wait_ready``). Raises StartupError when the port or TLS files fail.
    """
    metrics = ServerMetrics()
    store = open_store(config.store) if config.store is not None else None
    core = ServerCore(config, metrics, store)
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if config.api_key is not None:
        interceptors.append(ApiKeyInterceptor(config.api_key, metrics))
    interceptors.append(TolerantDeserializerInterceptor(SERVICE_NAMES))
    server = grpc.aio.server(interceptors=interceptors, options=_server_options())
    targeting_pb2_grpc.add_TargetingServicer_to_server(TargetingServicer(core), server)
    vision_pb2_grpc.add_VisionServicer_to_server(VisionServicer(core), server)
    visual_search_pb2_grpc.add_VisualSearchServicer_to_server(VisualSearchServicer(core), server)
    health_servicer = _configure_health(server)
    await _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
    _configure_reflection(server)
    try:
        port = _configure_port(server, config)
        await server.start()
        if config.metrics_port is not None:
            try:
                metrics.serve(config.metrics_port, config.host)
            except OSError as exc:
                raise StartupError(
                    f"cannot serve metrics on {config.host}:{config.metrics_port}: "
                    f"{exc.strerror or exc} (--metrics-port in use?)"
                ) from exc
    except BaseException:
        await server.stop(None)
        if store is not None:
            store.close()
        raise
    tls = " with TLS" if config.tls_cert else ""
    log.info("listening on %s:%d%s (NOT_SERVING until models are loaded)", config.host, port, tls)
    running = RunningServer(server, core, health_servicer, port, config.host)
    running._load_task = asyncio.get_running_loop().create_task(
        running._load(pipeline_factory), name="onscreen-load"
    )
    if wait_ready:
        try:
            await running.wait_ready()
        except BaseException:
            await running.stop(0)
            raise
    return running
