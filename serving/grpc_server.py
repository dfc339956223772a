"""The gRPC server of ``onscreen serve``: thin servicers over plain async functions.

Layout (the grpc examples' habit): one servicer class per service, one method per RPC that
converts protobuf <-> domain objects and delegates; ``_configure_*`` helpers wire health,
reflection, auth and TLS in ``start_server``; every exception goes through
``serving.status.status_for`` (nothing escapes as UNKNOWN).

Request path of an image: bytes -> ``decode_image`` (a CPU thread, limits checked from the
header before any pixel) -> one ``Frame`` -> the shared ``MicroBatcher`` whose function is
``pipeline.analyzer.analyze_batch`` (ONE model thread) -> ``FrameFacts`` -> ``Targeter.place``
-> placements. ScanVideo keyframes and TargetStream frames go through the same batcher, so
they share model batches with image requests.

Lifecycle: ``start_server`` binds the port and starts serving health at once (NOT_SERVING),
then loads the models and rules in a thread, warms the models up with one dummy batch and
switches health to SERVING ("serving on HOST:PORT" is logged). Calls that need the models
before that are UNAVAILABLE. ``RunningServer.stop`` sets NOT_SERVING, stops accepting calls,
lets in-flight calls finish within the grace period, then closes the batcher, the rules
watcher, the store and the metrics endpoint.

Time: rules' flight dates are checked against the server's local date (``date.today()``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import hmac
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePath
from typing import Any

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serving import proto_convert as pc
from serving._proto.onscreen.v1 import (
    targeting_pb2,
    targeting_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
    visual_search_pb2,
    visual_search_pb2_grpc,
)
from serving.batcher import MicroBatcher
from serving.metrics import ServerMetrics
from serving.placement_store import PlacementStore
from serving.server_config import (
    API_KEY_METADATA,
    DEFAULT_MAX_PLACEMENTS,
    KEEPALIVE_TIME_MS,
    KEEPALIVE_TIMEOUT_MS,
    MAX_CAMPAIGN_FILTER,
    MAX_CONCURRENT_STREAMS,
    MAX_IMAGE_MESSAGE_BYTES,
    MAX_MEDIA_ID_CHARS,
    MAX_PLACEMENTS,
    MAX_SEND_MESSAGE_BYTES,
    MAX_STREAMS_PER_CALL,
    MAX_UPLOAD_CHUNK_BYTES,
    MIN_CLIENT_PING_INTERVAL_MS,
    SCAN_PROGRESS_EVERY_S,
    STREAM_WINDOW_S,
    ServerConfig,
)
from serving.status import (
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    Unavailable,
    Unimplemented,
    status_for,
)
from serving.targeter import Targeter
from targeting.rules_watch import ReloadResult, RulesHolder, RulesWatcher
from targeting.types import Placement
from vision.errors import OnscreenError, Overloaded
from vision.image_decode import decode_image
from vision.limits import MAX_VIDEO_BYTES
from vision.pipeline import Pipeline, build_pipeline
from vision.types import Frame, FrameFacts, KeyframeReason

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    targeting_pb2.DESCRIPTOR.services_by_name["Targeting"].full_name,
    vision_pb2.DESCRIPTOR.services_by_name["Vision"].full_name,
    visual_search_pb2.DESCRIPTOR.services_by_name["VisualSearch"].full_name,
)
"""Fully qualified names of the served services (health is reported for each and for "")."""
HEALTH_SERVICE = health.SERVICE_NAME
REFLECTION_SERVICE = reflection.SERVICE_NAME
AUTH_EXEMPT_PREFIXES = (f"/{HEALTH_SERVICE}/", "/grpc.reflection.")
"""Methods callable without the API key: load balancers and grpcurl must see health/reflection."""

WARMUP_IMAGE_SIDE_PX = 320
"""Side of the grey warm-up frame, pixels (enough to run every model once)."""
SCAN_OVERLOAD_RETRY_S = 30.0
"""A scan's keyframe that finds the queue full retries this long (image requests go first)."""
SCAN_OVERLOAD_BACKOFF_S = 0.02
"""Pause between such retries, seconds."""
UPLOAD_DIR_PREFIX = "onscreen-upload-"
"""Prefix of the temporary directory an uploaded video is spilled into (removed after)."""


class StartupError(OnscreenError):
    """The server cannot start: a port in use, a TLS file missing, models that fail to load."""


# --- the loaded state ----------------------------------------------------------------------------


@dataclass
class Engine:
    """What the model-backed RPCs need; exists once models are loaded and warmed up."""

    pipeline: Pipeline
    targeter: Targeter
    batcher: MicroBatcher[Frame, FrameFacts]
    holder: RulesHolder
    watcher: RulesWatcher | None = None

    def models(self) -> list[str]:
        """Names of the models that run, e.g. ``clip:ViT-B-32``, ``detector:nudenet-320n``."""
        cfg = self.pipeline.config
        out: list[str] = []
        if self.pipeline.clip is not None:
            out.append(
                f"clip:{cfg.clip_model}" + ("" if self.pipeline.clip_meaningful else ":random")
            )
        if self.pipeline.analyzer.detector is not None and cfg.detector_weights:
            out.append(f"detector:{cfg.detector_weights}")
        if self.pipeline.analyzer.logos is not None:
            out.append("logos:reference-features")
        return out


def analyze_isolating(pipeline: Pipeline, frames: list[Frame]) -> list[FrameFacts | Exception]:
    """``analyze_batch`` over ``frames``; if the batch fails, each frame is retried alone so
    one bad frame fails only its own request (its slot holds the exception)."""
    try:
        return list(pipeline.analyzer.analyze_batch(frames))
    except Exception:
        if len(frames) == 1:
            raise
        log.warning("a batch of %d frames failed; retrying them one by one", len(frames))
    out: list[FrameFacts | Exception] = []
    for f in frames:
        try:
            out.extend(pipeline.analyzer.analyze_batch([f]))
        except Exception as exc:
            out.append(exc)
    return out


class ServerCore:
    """Shared by the servicers: config, metrics, the placement store and (once loaded) the engine."""

    def __init__(
        self, config: ServerConfig, metrics: ServerMetrics, store: PlacementStore | None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.store = store
        self.engine_or_none: Engine | None = None

    def engine(self) -> Engine:
        if self.engine_or_none is None:
            raise Unavailable("the server is still loading its models; retry in a few seconds")
        return self.engine_or_none

    @staticmethod
    def today() -> date:
        return date.today()


# --- plain request functions ---------------------------------------------------------------------


def check_media_id(media_id: str, *, what: str = "media_id", required: bool = True) -> str:
    """A request's id: required (unless said otherwise), at most MAX_MEDIA_ID_CHARS."""
    if not media_id and required:
        raise ValueError(f"{what} is required: the id placements are reported under")
    if len(media_id) > MAX_MEDIA_ID_CHARS:
        raise ValueError(
            f"{what} is {len(media_id)} characters, over the {MAX_MEDIA_ID_CHARS} limit"
        )
    return media_id


def check_campaign_filter(ids: list[str] | tuple[str, ...], engine: Engine) -> frozenset[str]:
    """The campaign ids a request restricts itself to; unknown ids are INVALID_ARGUMENT."""
    if len(ids) > MAX_CAMPAIGN_FILTER:
        raise ValueError(f"{len(ids)} campaign ids, over the {MAX_CAMPAIGN_FILTER} limit")
    wanted = frozenset(ids)
    known = {c.id for c in engine.targeter.compiled.rules.campaigns}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(
            f"unknown campaign id(s) {', '.join(unknown[:10])}: the served rules have "
            f"{', '.join(sorted(known)[:20]) or 'no campaigns'}"
        )
    return wanted


def filter_placements(placements: list[Placement], wanted: frozenset[str]) -> list[Placement]:
    return [p for p in placements if not wanted or p.campaign in wanted]


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as absolute ``time.monotonic()`` seconds; DeadlineExceeded if past."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    if remaining <= 0:
        raise DeadlineExceeded("the deadline passed before the server could start the work")
    return time.monotonic() + remaining


async def decode_frame(core: ServerCore, data: bytes, media_id: str, t: float = 0.0) -> Frame:
    """Image bytes -> Frame, decoded on a CPU thread; refused early when the queue is full."""
    engine = core.engine()
    if engine.batcher.depth >= engine.batcher.max_queue:  # do not decode what cannot be queued
        raise Overloaded(
            f"server busy: {engine.batcher.depth} frames wait for the model (queue limit "
            f"{engine.batcher.max_queue}); back off and retry"
        )
    source = f"image of {media_id!r}" if media_id else "image"
    image = await asyncio.to_thread(decode_image, data, source)
    reason: KeyframeReason = "image" if t == 0.0 else "interval"
    return Frame(media_id=media_id, t=t, image=image, index=0, reason=reason)


async def analyze_image(
    core: ServerCore, data: bytes, media_id: str, deadline: float | None
) -> FrameFacts:
    frame = await decode_frame(core, data, media_id)
    return await core.engine().batcher.submit(frame, deadline)


async def target_image(
    core: ServerCore,
    data: bytes,
    media_id: str,
    *,
    campaign_ids: list[str],
    max_placements: int,
    deadline: float | None,
) -> tuple[list[Placement], FrameFacts, str]:
    """Image bytes -> (placements best rank first, facts, rules version)."""
    engine = core.engine()
    check_media_id(media_id)
    wanted = check_campaign_filter(campaign_ids, engine)
    if not (0 <= max_placements <= MAX_PLACEMENTS):
        raise ValueError(f"max_placements must be in 0..{MAX_PLACEMENTS}, got {max_placements}")
    facts = await analyze_image(core, data, media_id, deadline)
    compiled = engine.targeter.compiled
    placements = filter_placements(
        engine.targeter.place([facts], media=media_id, today=core.today()), wanted
    )
    placements.sort(key=lambda p: (p.rank or MAX_PLACEMENTS + 1, -p.score))
    return placements[: max_placements or DEFAULT_MAX_PLACEMENTS], facts, compiled.version


def resolve_media_path(root: Path | None, rel: str) -> Path:
    """``rel`` under ``root``, refusing anything that leaves it (absolute, ``..``, symlinks out).

    Raises FailedPrecondition without a media root, ValueError for a path that leaves it,
    NotFound for a file that is not there.
    """
    if root is None:
        raise FailedPrecondition(
            "this server has no media root: start it with --media-root DIR, or upload the video"
        )
    if not rel:
        raise ValueError("media_root_path is empty: give a path relative to the media root")
    pure = PurePath(rel)
    if pure.is_absolute() or rel.startswith(("/", "\\")) or ":" in pure.parts[0]:
        raise ValueError(
            f"media_root_path {rel!r} is absolute: give a path relative to the media root"
        )
    if ".." in pure.parts:
        raise ValueError(
            f"media_root_path {rel!r} contains '..': paths may not leave the media root"
        )
    real_root = root.resolve()
    path = (real_root / pure).resolve()
    if not path.is_relative_to(real_root):
        raise ValueError(
            f"media_root_path {rel!r} leads outside the media root (a symlink out of it?)"
        )
    if not path.is_file():
        raise NotFound(f"media_root_path {rel!r}: no such file under the media root")
    return path


async def submit_waiting(engine: Engine, frame: Frame, deadline: float | None) -> FrameFacts:
    """Submit a scan's keyframe; on a full queue retry briefly (requests for images go first)."""
    give_up = time.monotonic() + SCAN_OVERLOAD_RETRY_S
    while True:
        try:
            return await engine.batcher.submit(frame, deadline)
        except Overloaded:
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(SCAN_OVERLOAD_BACKOFF_S)


@dataclass
class ScanEvent:
    """One thing ScanVideo reports: progress, facts, a placement or the summary."""

    kind: str
    value: Any


async def receive_upload(
    requests: AsyncIterator[targeting_pb2.ScanVideoRequest],
    upload: targeting_pb2.ScanVideoUpload,
    directory: Path,
) -> Path:
    """Spill an upload's chunks to a file in ``directory``, checking size and sha256."""
    size = upload.size_bytes
    if not (0 < size <= MAX_VIDEO_BYTES):
        raise ValueError(
            f"upload size_bytes must be in 1..{MAX_VIDEO_BYTES} ({MAX_VIDEO_BYTES / 2**30:.0f} GiB), "
            f"got {size}"
        )
    suffix = PurePath(upload.filename).suffix.lower()
    suffix = suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6 else ""
    path = directory / f"upload{suffix}"
    digest = hashlib.sha256()
    received = 0
    with open(path, "wb") as f:
        async for req in requests:
            if req.WhichOneof("message") != "chunk":
                raise ValueError("after start, every ScanVideo message must be a chunk")
            chunk = req.chunk
            if len(chunk) > MAX_UPLOAD_CHUNK_BYTES:
                raise ValueError(
                    f"upload chunk of {len(chunk)} bytes, over the {MAX_UPLOAD_CHUNK_BYTES} limit"
                )
            received += len(chunk)
            if received > size:
                raise ValueError(f"upload is larger than its declared size_bytes {size}")
            digest.update(chunk)
            await asyncio.to_thread(f.write, chunk)
    if received != size:
        raise ValueError(f"upload ended after {received} bytes, but size_bytes said {size}")
    if upload.sha256 and upload.sha256.lower() != digest.hexdigest():
        raise ValueError(
            f"upload sha256 mismatch: declared {upload.sha256}, received {digest.hexdigest()}"
        )
    return path


def _media_duration(path: Path) -> float:
    from vision.media import is_video_file
    from vision.video_decode import probe_video

    if not is_video_file(path):
        return 0.0
    return float(probe_video(path).duration_s or 0.0)


async def scan_video(
    core: ServerCore,
    path: Path,
    media_id: str,
    *,
    wanted: frozenset[str],
    store: bool,
    include_facts: bool,
    deadline: float | None,
    received_bytes: int = 0,
) -> AsyncIterator[ScanEvent]:
    """Keyframes of ``path`` through the shared batcher -> facts -> placements, as events.

    Keyframes are decoded on a CPU thread one at a time and kept in flight in the batcher up to
    a window (so one scan never fills the queue alone). Progress is reported every
    SCAN_PROGRESS_EVERY_S of media time; placements once the whole media is analyzed (matching
    needs the whole timeline to rank), then the summary.
    """
    from vision.media import load_frames

    engine = core.engine()
    started = time.perf_counter()
    duration = await asyncio.to_thread(_media_duration, path)
    frames: Iterator[Frame] = await asyncio.to_thread(
        load_frames, path, media_id, config=engine.pipeline.keyframes
    )
    window = max(1, min(engine.batcher.max_batch, engine.batcher.max_queue // 4))
    in_flight: collections.deque[asyncio.Future[FrameFacts]] = collections.deque()
    facts: list[FrameFacts] = []
    next_progress = SCAN_PROGRESS_EVERY_S

    def progress(t: float) -> ScanEvent:
        return ScanEvent(
            "progress",
            targeting_pb2.ScanProgress(
                t_s=t, duration_s=duration, keyframes=len(facts), received_bytes=received_bytes
            ),
        )

    try:
        while True:
            frame = await asyncio.to_thread(next, frames, None)
            if frame is not None:
                in_flight.append(asyncio.ensure_future(submit_waiting(engine, frame, deadline)))
            while in_flight and (frame is None or len(in_flight) >= window):
                f = await in_flight.popleft()
                facts.append(f)
                if include_facts:
                    yield ScanEvent("facts", f)
                if f.t >= next_progress:
                    next_progress = f.t + SCAN_PROGRESS_EVERY_S
                    yield progress(f.t)
            if frame is None:
                break
    finally:
        for fut in in_flight:
            fut.cancel()
    if not facts:
        raise OnscreenError(f"{media_id}: no frames could be decoded")
    yield progress(facts[-1].t)
    placements = filter_placements(
        await asyncio.to_thread(engine.targeter.place, facts, media=media_id, today=core.today()),
        wanted,
    )
    version = engine.targeter.compiled.version
    for p in placements:
        yield ScanEvent("placement", p)
    if store:
        assert core.store is not None
        await asyncio.to_thread(core.store.replace_media, media_id, placements)
    yield ScanEvent(
        "summary",
        targeting_pb2.ScanSummary(
            duration_s=duration or facts[-1].t,
            keyframes=len(facts),
            placements=len(placements),
            stored=store,
            elapsed_s=time.perf_counter() - started,
            rules_version=version,
        ),
    )


@dataclass
class LiveStream:
    """A live stream's rolling timeline and what was already reported for it."""

    stream_id: str
    wanted: frozenset[str]
    timeline: list[FrameFacts] = field(default_factory=list)
    emitted_until: dict[str, float] = field(default_factory=dict)
    last_t: float = -1.0


def close_segments(
    engine: Engine, stream: LiveStream, today: date, *, final: bool
) -> tuple[list[Placement], float]:
    """Placements of ``stream`` whose segments closed (all open ones when ``final``).

    A segment is closed when the latest frame is more than the campaign's ``gap_s`` after its
    end: no later frame can extend it. Returns (placements not reported before, decided-until
    time in seconds).
    """
    if not stream.timeline:
        return [], max(stream.last_t, 0.0)
    campaigns = {c.id: c for c in engine.targeter.compiled.rules.campaigns}
    placements = filter_placements(
        engine.targeter.place(stream.timeline, media=stream.stream_id, today=today), stream.wanted
    )
    t = stream.last_t
    out: list[Placement] = []
    for p in sorted(placements, key=lambda p: p.start_s):
        if p.start_s <= stream.emitted_until.get(p.campaign, -1.0):
            continue  # reported already
        gap = campaigns[p.campaign].gap_s if p.campaign in campaigns else 0.0
        if final or t - p.end_s > gap:
            out.append(p)
            stream.emitted_until[p.campaign] = p.end_s
    max_gap = max((c.gap_s for c in campaigns.values()), default=0.0)
    decided = t if final else max(0.0, t - max_gap)
    # forget what no open segment can reach (bounded memory for endless streams)
    horizon = t - STREAM_WINDOW_S
    if stream.timeline[0].t < horizon:
        stream.timeline = [f for f in stream.timeline if f.t >= horizon]
    return out, decided


# --- servicers -----------------------------------------------------------------------------------


def _observed(method: str, *, streaming: bool = False) -> Callable:
    """Wrap an RPC: map any exception through status_for, record count by code and latency."""

    def wrap(fn: Callable) -> Callable:
        if streaming:

            @functools.wraps(fn)
            async def stream_wrapper(self, request, context):  # noqa: ANN001, ANN202
                started = time.perf_counter()
                code = "OK"
                try:
                    async for msg in fn(self, request, context):
                        yield msg
                except asyncio.CancelledError:
                    code = "CANCELLED"
                    raise
                except grpc.aio.AbortError:
                    code = _code_name(context)
                    raise
                except Exception as exc:
                    status, message = status_for(exc)
                    code = status.name
                    await context.abort(status, message)
                finally:
                    self.core.metrics.observe_request(method, code, time.perf_counter() - started)

            return stream_wrapper

        @functools.wraps(fn)
        async def unary_wrapper(self, request, context):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            code = "OK"
            try:
                return await fn(self, request, context)
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except Exception as exc:
                status, message = status_for(exc)
                code = status.name
                await context.abort(status, message)
            finally:
                self.core.metrics.observe_request(method, code, time.perf_counter() - started)

        return unary_wrapper

    return wrap


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


class TargetingServicer(targeting_pb2_grpc.TargetingServicer):
    """onscreen.v1.Targeting: converts messages and delegates to the functions above."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    @_observed("TargetImage")
    async def TargetImage(self, request, context):  # noqa: ANN001, ANN201, N802
        placements, facts, version = await target_image(
            self.core,
            request.image,
            request.media_id,
            campaign_ids=list(request.campaign_ids),
            max_placements=request.max_placements,
            deadline=deadline_of(context),
        )
        if request.similar_items_count:
            raise Unimplemented(
                "similar_items_count: the visual search catalog comes in a later release; "
                "send 0 for now"
            )
        response = targeting_pb2.TargetImageResponse(
            placements=pc.placements_to_proto(placements), rules_version=version
        )
        if request.include_facts:
            response.facts.CopyFrom(pc.facts_to_proto(facts))
        return response

    @_observed("ScanVideo", streaming=True)
    async def ScanVideo(self, request_iterator, context):  # noqa: ANN001, ANN201, N802
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("message") != "start":
            raise ValueError("the first ScanVideo message must be `start` (which video, and how)")
        start = first.start
        engine = self.core.engine()
        media_id = check_media_id(start.media_id)
        wanted = check_campaign_filter(list(start.campaign_ids), engine)
        if start.store and self.core.store is None:
            raise FailedPrecondition(
                "store=true, but this server has no placement store: start it with --store PATH"
            )
        deadline = deadline_of(context)
        source = start.WhichOneof("source")
        tmp: Path | None = None
        try:
            if source == "media_root_path":
                path = resolve_media_path(self.core.config.media_root, start.media_root_path)
                received = 0
            elif source == "upload":
                tmp = Path(tempfile.mkdtemp(prefix=UPLOAD_DIR_PREFIX))
                path = await receive_upload(requests, start.upload, tmp)
                received = start.upload.size_bytes
            else:
                raise ValueError("ScanVideo start needs a source: media_root_path or upload")
            async for event in scan_video(
                self.core, path, media_id, wanted=wanted, store=start.store,
                include_facts=start.include_facts, deadline=deadline, received_bytes=received,
            ):  # fmt: skip
                if event.kind == "progress":
                    yield targeting_pb2.ScanVideoResponse(progress=event.value)
                elif event.kind == "facts":
                    yield targeting_pb2.ScanVideoResponse(facts=pc.facts_to_proto(event.value))
                elif event.kind == "placement":
                    yield targeting_pb2.ScanVideoResponse(
                        placement=pc.placement_to_proto(event.value)
                    )
                else:
                    yield targeting_pb2.ScanVideoResponse(summary=event.value)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    @_observed("TargetStream", streaming=True)
    async def TargetStream(self, request_iterator, context):  # noqa: ANN001, ANN201, N802
        streams: dict[str, LiveStream] = {}
        async for req in request_iterator:
            engine = self.core.engine()
            sid = check_media_id(req.stream_id, what="stream_id")
            stream = streams.get(sid)
            if stream is None:
                if len(streams) >= MAX_STREAMS_PER_CALL:
                    raise ValueError(
                        f"more than {MAX_STREAMS_PER_CALL} streams in one call: open another call"
                    )
                wanted = check_campaign_filter(list(req.campaign_ids), engine)
                stream = streams[sid] = LiveStream(sid, wanted)
            if req.jpeg:
                if not (req.t_s >= 0 and np.isfinite(req.t_s)):
                    raise ValueError(
                        f"stream {sid!r}: t_s must be a finite time >= 0, got {req.t_s}"
                    )
                if req.t_s <= stream.last_t:
                    raise ValueError(
                        f"stream {sid!r}: t_s went from {stream.last_t} to {req.t_s}; "
                        "frame times must increase"
                    )
                image = await asyncio.to_thread(
                    decode_image, req.jpeg, f"stream {sid!r} frame at {req.t_s:.3f} s"
                )
                frame = Frame(media_id=sid, t=req.t_s, image=image, reason="interval")
                facts = await engine.batcher.submit(frame, deadline_of(context))
                stream.timeline.append(facts)
                stream.last_t = req.t_s
            elif not req.end_of_stream:
                raise ValueError(f"stream {sid!r}: a message needs a jpeg frame or end_of_stream")
            closed, decided = close_segments(
                engine, stream, self.core.today(), final=req.end_of_stream
            )
            if closed or req.end_of_stream:
                yield targeting_pb2.TargetStreamResponse(
                    stream_id=sid,
                    placements=pc.placements_to_proto(closed),
                    decided_until_s=decided,
                )
            if req.end_of_stream:
                del streams[sid]
        # the client half-closed: whatever is still open closes now
        for sid, stream in streams.items():
            closed, decided = close_segments(
                self.core.engine(), stream, self.core.today(), final=True
            )
            yield targeting_pb2.TargetStreamResponse(
                stream_id=sid, placements=pc.placements_to_proto(closed), decided_until_s=decided
            )

    @_observed("LookupPlacements")
    async def LookupPlacements(self, request, context):  # noqa: ANN001, ANN201, N802
        store = self.core.store
        if store is None:
            raise FailedPrecondition(
                "this server has no placement store: start it with --store PATH"
            )
        media_id = check_media_id(request.media_id)
        t_s = request.t_s if request.HasField("t_s") else None
        placements = store.lookup(media_id, t_s)  # sub-millisecond: not worth a thread hop
        if placements is None:
            raise NotFound(
                f"media {media_id!r} was never scanned into the placement store: scan it first "
                "(`onscreen scan ... --store`, or ScanVideo with store=true)"
            )
        response = targeting_pb2.LookupPlacementsResponse(
            placements=pc.placements_to_proto(placements)
        )
        scanned = store.scanned_at(media_id)
        if scanned is not None:
            ts = Timestamp()
            ts.FromDatetime(scanned)
            response.scanned_at.CopyFrom(ts)
        return response


class VisionServicer(vision_pb2_grpc.VisionServicer):
    """onscreen.v1.Vision: the models alone, no rules."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    @_observed("Analyze")
    async def Analyze(self, request, context):  # noqa: ANN001, ANN201, N802
        media_id = check_media_id(request.media_id, required=False)
        facts = await analyze_image(self.core, request.image, media_id, deadline_of(context))
        return vision_pb2.AnalyzeResponse(
            facts=pc.facts_to_proto(facts, include_embedding=request.include_embedding),
            models=self.core.engine().models(),
        )


_CATALOG_LATER = (
    "the visual search catalog comes in a later release of onscreen; this server does not "
    "serve VisualSearch yet"
)


class VisualSearchServicer(visual_search_pb2_grpc.VisualSearchServicer):
    """onscreen.v1.VisualSearch: declared in the contract, UNIMPLEMENTED until the catalog lands."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    @_observed("SimilarItems")
    async def SimilarItems(self, request, context):  # noqa: ANN001, ANN201, N802
        raise Unimplemented(_CATALOG_LATER)

    @_observed("UpsertItems")
    async def UpsertItems(self, request, context):  # noqa: ANN001, ANN201, N802
        raise Unimplemented(_CATALOG_LATER)

    @_observed("DeleteItems")
    async def DeleteItems(self, request, context):  # noqa: ANN001, ANN201, N802
        raise Unimplemented(_CATALOG_LATER)


# --- auth ----------------------------------------------------------------------------------------


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without the shared API key in metadata ``x-api-key`` (UNAUTHENTICATED).

    Health and reflection are exempt (load balancers and grpcurl must reach them). The key is
    compared in constant time.
    """

    def __init__(self, api_key: str, metrics: ServerMetrics) -> None:
        self._key = api_key.encode()
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method or ""
        if handler is None or method.startswith(AUTH_EXEMPT_PREFIXES):
            return handler
        given = dict(details.invocation_metadata or ()).get(API_KEY_METADATA, "")
        given_b = given.encode() if isinstance(given, str) else bytes(given)
        if hmac.compare_digest(given_b, self._key):
            return handler
        message = (
            f"missing API key: send it in the '{API_KEY_METADATA}' metadata"
            if not given
            else f"wrong API key in the '{API_KEY_METADATA}' metadata"
        )
        self._metrics.observe_request(method.rsplit("/", 1)[-1], "UNAUTHENTICATED", 0.0)
        return _deny(handler, message)


def _deny(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    code = grpc.StatusCode.UNAUTHENTICATED

    async def unary(request, context):  # noqa: ANN001, ANN202
        await context.abort(code, message)

    async def streaming(request, context):  # noqa: ANN001, ANN202
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **kw)
    return grpc.unary_unary_rpc_method_handler(unary, **kw)


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


def _configure_port(server: grpc.aio.Server, config: ServerConfig) -> int:
    address = f"{config.host}:{config.port}"
    try:
        if config.tls_cert is not None and config.tls_key is not None:
            creds = grpc.ssl_server_credentials(
                [(_read(config.tls_key, "key"), _read(config.tls_cert, "certificate"))]
            )
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
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
                _load_rules, pipeline, config.rules_dir, self.core.metrics
            )
            m = self.core.metrics
            batcher: MicroBatcher[Frame, FrameFacts] = MicroBatcher(
                functools.partial(analyze_isolating, pipeline),
                max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
                max_queue=config.max_queue, name="model", on_batch=m.observe_batch,
                on_queue_depth=m.set_queue_depth, on_dropped=m.observe_dropped,
            )  # fmt: skip
            engine = Engine(pipeline, targeter, batcher, holder)
            if config.warmup:
                t0 = time.perf_counter()
                side = WARMUP_IMAGE_SIDE_PX
                grey = np.full((side, side, 3), 127, np.uint8)
                await batcher.submit(Frame("warmup", 0.0, grey, reason="image"))
                log.info("models warmed up in %.2f s", time.perf_counter() - t0)
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
        self.core.metrics.ready.set(0)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        engine = self.core.engine_or_none
        if engine is not None:
            await engine.batcher.close()
            if engine.watcher is not None:
                await asyncio.to_thread(engine.watcher.stop)
        if self.core.store is not None:
            self.core.store.close()
        self.core.metrics.close()
        log.info("stopped")


def _load_rules(
    pipeline: Pipeline, rules_dir: Path, metrics: ServerMetrics
) -> tuple[Targeter, RulesHolder]:
    """The Targeter and its RulesHolder: every new rules version is compiled before it serves;
    each reload's outcome is counted (``onscreen_rules_reloads_total{result}``)."""
    box: list[Targeter] = []

    def on_change(rules) -> None:  # noqa: ANN001
        if not box:
            box.append(Targeter(pipeline, rules))
        else:
            box[0].swap(rules)

    def on_reload(result: ReloadResult) -> None:
        metrics.reloads.labels(result="applied" if result.ok else "rejected").inc()

    holder = RulesHolder(rules_dir, on_change=on_change, on_reload=on_reload)
    return box[0], holder


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
    store = PlacementStore(config.store) if config.store is not None else None
    core = ServerCore(config, metrics, store)
    interceptors = [ApiKeyInterceptor(config.api_key, metrics)] if config.api_key else []
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
            metrics.serve(config.metrics_port, config.host)
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


def environ_api_key(explicit: str | None) -> str | None:
    """The API key from ``--api-key``, else from $ONSCREEN_API_KEY, else None (auth off)."""
    from serving.server_config import API_KEY_ENV

    return explicit or os.environ.get(API_KEY_ENV) or None
