"""What each RPC does, as plain async functions over domain objects (no protobuf in, no
status codes out): servicers convert and delegate here, tests can call these directly.

Image: admission (queue slots and the decode budget, priced from the header) -> bytes decoded
on a CPU thread and shrunk to ``MODEL_MAX_SIDE_PX`` -> one ``Frame`` -> the shared
micro-batcher -> ``FrameFacts`` -> ``Targeter.place``. ScanVideo keyframes and TargetStream
frames go through the same batcher, so they share model batches with image requests.

One rules snapshot per request: each function takes ``engine.targeter.snapshot`` once and
hands it to the batcher (logos are matched against its brands) and to ``place``, so the
``rules_version`` reported is the version that made the placements, even across a reload.

Client-facing messages name the request's own id or relative path, never a server path (the
media root, a temporary upload file, the rules directory).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import numpy as np

from serving._proto.onscreen.v1 import targeting_pb2
from serving.media_scan import keyframes_of, place_timeline
from serving.rpc.batcher import MicroBatcher
from serving.rpc.config import (
    DEFAULT_MAX_PLACEMENTS,
    MAX_CAMPAIGN_FILTER,
    MAX_PLACEMENTS,
    MAX_SIMILAR_ITEMS,
    MAX_UPLOAD_CHUNK_BYTES,
    SCAN_PROGRESS_EVERY_S,
    STREAM_WINDOW_S,
)
from serving.rpc.engine import Engine, ServerCore
from serving.rpc.pixel_budget import (
    MODEL_MAX_SIDE_PX,
    decode_cost_bytes,
    decode_for_models,
    shrink_for_models,
)
from serving.rpc.served_catalog import ServedCatalog
from serving.scan_events import ScanEvent, ScanProgress, ScanSummary
from serving.targeter import RulesSnapshot
from targeting.types import Placement
from vision.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MediaError,
    ModelError,
    NotFound,
    OnscreenError,
    Overloaded,
    Unimplemented,
)
from vision.limits import MAX_MEDIA_ID_CHARS, MAX_VIDEO_BYTES
from vision.types import Frame, FrameFacts, KeyframeReason

if TYPE_CHECKING:  # FAISS loads only on a server that opens a catalog
    from vision.catalog import SearchHit

log = logging.getLogger(__name__)

T = TypeVar("T")

SCAN_OVERLOAD_RETRY_S = 30.0
"""A scan's keyframe that finds the queue full retries this long (image requests go first)."""
SCAN_OVERLOAD_BACKOFF_S = 0.02
"""Pause between such retries, seconds."""
UPLOAD_DIR_PREFIX = "onscreen-upload-"
"""Prefix of the temporary directory an uploaded video is spilled into (removed after)."""


# --- plain request functions ---------------------------------------------------------------------


def check_media_id(media_id: str, *, what: str = "media_id", required: bool = True) -> str:
    """A request's id: required (unless said otherwise), at most MAX_MEDIA_ID_CHARS."""
    if not media_id and required:
        raise InvalidArgument(f"{what} is required: the id placements are reported under")
    if len(media_id) > MAX_MEDIA_ID_CHARS:
        raise InvalidArgument(
            f"{what} is {len(media_id)} characters, over the {MAX_MEDIA_ID_CHARS} limit"
        )
    return media_id


def image_media_id(media_id: str, data: bytes) -> str:
    """TargetImage's id: the one given (checked), else the image bytes' sha256 (hex), so
    placements of an anonymous image are reported under its content hash (DESIGN.md)."""
    return check_media_id(media_id, required=False) or hashlib.sha256(data).hexdigest()


def check_campaign_filter(
    ids: list[str] | tuple[str, ...], snapshot: RulesSnapshot
) -> frozenset[str]:
    """The campaign ids a request restricts itself to; unknown ids are INVALID_ARGUMENT."""
    if len(ids) > MAX_CAMPAIGN_FILTER:
        raise InvalidArgument(f"{len(ids)} campaign ids, over the {MAX_CAMPAIGN_FILTER} limit")
    wanted = frozenset(ids)
    known = {c.id for c in snapshot.rules.campaigns}
    unknown = sorted(wanted - known)
    if unknown:
        raise InvalidArgument(
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


@contextlib.asynccontextmanager
async def admitted(
    engine: Engine, data: bytes, source: str, batcher: MicroBatcher[Any, Any] | None = None
) -> AsyncIterator[None]:
    """Admission for one image, decided before any pixel is decoded: a queue slot (images
    being decoded count with the frames waiting for the model) and its decode cost from the
    decode budget. Either one missing is ``Overloaded`` (RESOURCE_EXHAUSTED) at once.
    ``batcher``: the queue the image will wait in (default: the targeting models')."""
    batcher = batcher or engine.batcher
    if batcher.depth + engine.decoding >= batcher.max_queue:
        raise Overloaded(
            f"server busy: {batcher.depth} frames wait for the model and {engine.decoding} "
            f"images are being decoded (queue limit {batcher.max_queue}); back off and retry"
        )
    with engine.budget.reserve(decode_cost_bytes(data, source)):
        engine.decoding += 1
        try:
            yield
        finally:
            engine.decoding -= 1


async def analyze_image(
    core: ServerCore,
    data: bytes,
    media_id: str,
    deadline: float | None,
    snapshot: RulesSnapshot,
    *,
    t: float = 0.0,
    source: str | None = None,
) -> FrameFacts:
    """Image bytes -> FrameFacts with ``snapshot``'s logos: admitted, decoded on a CPU thread
    and shrunk for the models, then through the shared batcher. The facts report the image's
    own width and height (boxes are normalized, so the shrinking does not show)."""
    engine = core.engine()
    name = source or (f"image of {media_id!r}" if media_id else "image")
    image, size = await decode_admitted(engine, data, name)
    return await facts_of(engine, image, size, media_id, deadline, snapshot, t=t)


async def decode_admitted(
    engine: Engine, data: bytes, source: str, batcher: MicroBatcher[Any, Any] | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Image bytes -> (RGB pixels shrunk for the models, (width, height) as encoded): admitted
    (``admitted``, against ``batcher``'s queue), decoded on a CPU thread. MediaError if bad."""
    async with admitted(engine, data, source, batcher):
        return await asyncio.to_thread(decode_for_models, data, source)


async def facts_of(
    engine: Engine,
    image: np.ndarray,
    size: tuple[int, int],
    media_id: str,
    deadline: float | None,
    snapshot: RulesSnapshot,
    *,
    t: float = 0.0,
) -> FrameFacts:
    """Decoded pixels -> FrameFacts through the shared batcher; the facts report the image's
    own ``size`` (boxes are normalized, so the shrinking does not show)."""
    # the working frame is small (<= MODEL_MAX_SIDE_PX); hold its bytes until the facts return
    with engine.budget.reserve(image.nbytes):
        reason: KeyframeReason = "image" if t == 0.0 else "interval"
        frame = Frame(media_id=media_id, t=t, image=image, index=0, reason=reason)
        del image
        facts = await engine.batcher.submit((frame, snapshot), deadline)
    width, height = size
    return dataclasses.replace(facts, width=width, height=height)


async def features_of(
    engine: Engine, served: ServedCatalog, image: np.ndarray, deadline: float | None
) -> np.ndarray:
    """Decoded pixels -> their (dim,) visual features, through the catalog's batcher (which
    runs on the targeting models' one worker thread)."""
    with engine.budget.reserve(image.nbytes):
        return await served.features.submit(image, deadline)


async def all_or_cancel(*aws: Awaitable[T]) -> list[T]:
    """Await every awaitable concurrently; at the first failure cancel the rest and raise it
    (as itself, not an ExceptionGroup, so ``status_for`` maps it)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def check_similar_count(k: int, what: str) -> int:
    """A requested number of similar items: 1..MAX_SIMILAR_ITEMS, else InvalidArgument."""
    if not (1 <= k <= MAX_SIMILAR_ITEMS):
        raise InvalidArgument(f"{what} must be in 1..{MAX_SIMILAR_ITEMS}, got {k}")
    return k


def served_catalog(core: ServerCore, what: str) -> ServedCatalog:
    """The server's catalog; Unimplemented (saying how to get one) when it was started without,
    Unavailable while it still loads."""
    if core.config.catalog is None:
        raise Unimplemented(
            f"{what} needs the visual search catalog, and this server has none: start the "
            "server with --catalog DIR (a directory made by `onscreen catalog build`)"
        )
    served = core.engine().catalog
    assert served is not None, "a server with --catalog opens its catalog before it serves"
    return served


async def search_vector(
    served: ServedCatalog, vector: np.ndarray, k: int, exclude: Sequence[str] = ()
) -> list[SearchHit]:
    """The ``k`` catalog items nearest ``vector``, on a thread (a search holds the catalog's
    read lock; a write waits only for the in-memory apply)."""
    hits = await asyncio.to_thread(served.catalog.search, vector, k, exclude=exclude)
    return hits[0]


async def target_image(
    core: ServerCore,
    data: bytes,
    media_id: str,
    *,
    campaign_ids: list[str],
    max_placements: int,
    deadline: float | None,
    similar_items_count: int = 0,
) -> tuple[list[Placement], FrameFacts, str, list[SearchHit]]:
    """Image bytes -> (placements best rank first, facts, rules version, similar catalog items
    most similar first). ``media_id`` may be empty: the image's sha256 names it then. One rules
    snapshot serves the whole request. With ``similar_items_count`` the image is decoded once
    and its facts and visual features are computed side by side (two batches on the one model
    thread), then the catalog is searched with the whole image."""
    served = None
    if similar_items_count:
        check_similar_count(similar_items_count, "similar_items_count")
        served = served_catalog(core, "similar_items_count")
    engine = core.engine()
    snapshot = engine.targeter.snapshot
    media_id = image_media_id(media_id, data)
    wanted = check_campaign_filter(campaign_ids, snapshot)
    if not (0 <= max_placements <= MAX_PLACEMENTS):
        raise InvalidArgument(
            f"max_placements must be in 0..{MAX_PLACEMENTS}, got {max_placements}"
        )
    hits: list[SearchHit] = []
    if served is None:
        facts = await analyze_image(core, data, media_id, deadline, snapshot)
    else:
        image, size = await decode_admitted(engine, data, f"image of {media_id!r}")
        facts_task = asyncio.ensure_future(
            facts_of(engine, image, size, media_id, deadline, snapshot)
        )
        vector_task = asyncio.ensure_future(features_of(engine, served, image, deadline))
        del image
        await all_or_cancel(facts_task, vector_task)
        facts, vector = facts_task.result(), vector_task.result()
        hits = await search_vector(served, vector, similar_items_count)
    # the best of the wanted campaigns' placements (rank order), made as objects: a pin image
    # against 10^4 campaigns fits thousands of them, and the answer holds 20
    table = engine.targeter.place_table(
        [facts], media=media_id, today=core.today(), snapshot=snapshot
    )
    placements = table.top(max_placements or DEFAULT_MAX_PLACEMENTS, campaigns=wanted)
    return placements, facts, snapshot.version, hits


def resolve_media_path(root: Path | None, rel: str) -> Path:
    """``rel`` under ``root``, refusing anything that leaves it (absolute, ``..``, symlinks out).

    Raises FailedPrecondition without a media root, InvalidArgument for a path that leaves it
    or holds a control character (found by tests/fuzz), NotFound for a file that is not there.
    """
    if root is None:
        raise FailedPrecondition(
            "this server has no media root: start it with --media-root DIR, or upload the video"
        )
    if not rel:
        raise InvalidArgument("media_root_path is empty: give a path relative to the media root")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in rel):
        raise InvalidArgument(
            f"media_root_path {rel!r} holds a control character (a NUL byte?): no file is named so"
        )
    pure = PurePath(rel)
    if pure.is_absolute() or rel.startswith(("/", "\\")) or ":" in pure.parts[0]:
        raise InvalidArgument(
            f"media_root_path {rel!r} is absolute: give a path relative to the media root"
        )
    if ".." in pure.parts:
        raise InvalidArgument(
            f"media_root_path {rel!r} contains '..': paths may not leave the media root"
        )
    real_root = root.resolve()
    path = (real_root / pure).resolve()
    if not path.is_relative_to(real_root):
        raise InvalidArgument(
            f"media_root_path {rel!r} leads outside the media root (a symlink out of it?)"
        )
    if not path.is_file():
        raise NotFound(f"media_root_path {rel!r}: no such file under the media root")
    return path


async def submit_waiting(
    engine: Engine, frame: Frame, snapshot: RulesSnapshot, deadline: float | None
) -> FrameFacts:
    """Submit a scan's keyframe; on a full queue retry briefly (requests for images go first)."""
    give_up = time.monotonic() + SCAN_OVERLOAD_RETRY_S
    while True:
        try:
            return await engine.batcher.submit((frame, snapshot), deadline)
        except Overloaded:
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(SCAN_OVERLOAD_BACKOFF_S)


async def receive_upload(
    requests: AsyncIterator[targeting_pb2.ScanVideoRequest],
    upload: targeting_pb2.ScanVideoUpload,
    directory: Path,
) -> Path:
    """Spill an upload's chunks to a file in ``directory``, checking size and sha256."""
    size = upload.size_bytes
    if not (0 < size <= MAX_VIDEO_BYTES):
        raise InvalidArgument(
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
                raise InvalidArgument("after start, every ScanVideo message must be a chunk")
            chunk = req.chunk
            if len(chunk) > MAX_UPLOAD_CHUNK_BYTES:
                raise InvalidArgument(
                    f"upload chunk of {len(chunk)} bytes, over the {MAX_UPLOAD_CHUNK_BYTES} limit"
                )
            received += len(chunk)
            if received > size:
                raise InvalidArgument(f"upload is larger than its declared size_bytes {size}")
            digest.update(chunk)
            await asyncio.to_thread(f.write, chunk)
    if received != size:
        raise InvalidArgument(f"upload ended after {received} bytes, but size_bytes said {size}")
    if upload.sha256 and upload.sha256.lower() != digest.hexdigest():
        raise InvalidArgument(
            f"upload sha256 mismatch: declared {upload.sha256}, received {digest.hexdigest()}"
        )
    return path


def _media_duration(path: Path) -> float:
    from vision.media import is_video_file
    from vision.video_decode import probe_video

    if not is_video_file(path):
        return 0.0
    return float(probe_video(path).duration_s or 0.0)


def client_facing(exc: OnscreenError, names: Mapping[str, str]) -> OnscreenError:
    """``exc`` with every server path in ``names`` (server path -> what the client called it)
    replaced in its message, as the same class; errors whose message names no path pass."""
    message = str(exc)
    for server, shown in sorted(names.items(), key=lambda kv: -len(kv[0])):
        message = message.replace(server, shown)
    if message == str(exc) or not isinstance(exc, MediaError | ModelError | InvalidArgument):
        return exc
    return type(exc)(message)


async def scan_video(
    core: ServerCore,
    path: Path,
    media_id: str,
    *,
    server_names: Mapping[str, str],
    wanted: frozenset[str],
    snapshot: RulesSnapshot,
    store: bool,
    include_facts: bool,
    deadline: float | None,
    received_bytes: int = 0,
) -> AsyncIterator[ScanEvent]:
    """Keyframes of ``path`` through the shared batcher -> facts -> placements, as events.

    Keyframes are decoded on a CPU thread one at a time, shrunk to MODEL_MAX_SIDE_PX and kept
    in flight in the batcher up to a window (so one scan never fills the queue alone). Progress
    is reported every SCAN_PROGRESS_EVERY_S of media time; placements once the whole media is
    analyzed (matching needs the whole timeline to rank), then the summary. ``snapshot`` serves
    every keyframe and the placements. ``server_names`` maps server paths (``path`` itself, the
    media root, the upload directory) to what the client knows them as: error messages carry
    those names instead.
    """
    names = dict(server_names)
    try:
        async for event in _scan_video(
            core, path, media_id, wanted=wanted, snapshot=snapshot, store=store,
            include_facts=include_facts, deadline=deadline, received_bytes=received_bytes,
            ):  # fmt: skip
            yield event
    except OnscreenError as exc:
        raise client_facing(exc, names) from None


def _shrunk(frame: Frame | None) -> Frame | None:
    if frame is None or max(frame.height, frame.width) <= MODEL_MAX_SIDE_PX:
        return frame
    return dataclasses.replace(frame, image=shrink_for_models(frame.image))


def _next_keyframe(frames: Iterator[Frame]) -> Frame | None:
    return _shrunk(next(frames, None))


async def _scan_video(
    core: ServerCore,
    path: Path,
    media_id: str,
    *,
    wanted: frozenset[str],
    snapshot: RulesSnapshot,
    store: bool,
    include_facts: bool,
    deadline: float | None,
    received_bytes: int,
) -> AsyncIterator[ScanEvent]:
    engine = core.engine()
    started = time.perf_counter()
    duration = await asyncio.to_thread(_media_duration, path)
    frames: Iterator[Frame] = await asyncio.to_thread(keyframes_of, engine.pipeline, path, media_id)
    window = max(1, min(engine.batcher.max_batch, engine.batcher.max_queue // 4))
    in_flight: collections.deque[asyncio.Future[FrameFacts]] = collections.deque()
    facts: list[FrameFacts] = []
    next_progress = SCAN_PROGRESS_EVERY_S

    def progress(t: float) -> ScanEvent:
        return ScanEvent(
            progress=ScanProgress(
                t_s=t, duration_s=duration, keyframes=len(facts), received_bytes=received_bytes
            )
        )

    try:
        while True:
            frame = await asyncio.to_thread(_next_keyframe, frames)
            last = frame is None
            if frame is not None:
                in_flight.append(
                    asyncio.ensure_future(submit_waiting(engine, frame, snapshot, deadline))
                )
            del frame  # the batcher holds the frame while it waits; nothing else does
            while in_flight and (last or len(in_flight) >= window):
                f = await in_flight.popleft()
                facts.append(f)
                if include_facts:
                    yield ScanEvent(facts=f)
                if f.t >= next_progress:
                    next_progress = f.t + SCAN_PROGRESS_EVERY_S
                    yield progress(f.t)
            if last:
                break
    finally:
        for fut in in_flight:
            fut.cancel()
    if facts:
        yield progress(facts[-1].t)
    outcome = await asyncio.to_thread(
        place_timeline,
        engine.targeter,
        facts,
        media=media_id,
        today=core.today(),
        snapshot=snapshot,
    )  # the batch scan's own check and message for a media without a decodable frame
    placements = filter_placements(list(outcome.placements), wanted)
    for p in placements:
        yield ScanEvent(placement=p)
    if store:
        assert core.store is not None
        await asyncio.to_thread(core.store.replace_media, media_id, placements)
    yield ScanEvent(
        summary=ScanSummary(
            duration_s=duration or facts[-1].t,
            keyframes=len(facts),
            placements=len(placements),
            stored=store,
            elapsed_s=time.perf_counter() - started,
            rules_version=snapshot.version,
        )
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
    engine: Engine, stream: LiveStream, today: date, snapshot: RulesSnapshot, *, final: bool
) -> tuple[list[Placement], float]:
    """Placements of ``stream`` whose segments closed (all open ones when ``final``), matched
    against ``snapshot`` (the one its latest message took).

    A segment is closed when the latest frame is more than the campaign's ``gap_s`` after its
    end: no later frame can extend it. Returns (placements not reported before, decided-until
    time in seconds).
    """
    if not stream.timeline:
        return [], max(stream.last_t, 0.0)
    campaigns = {c.id: c for c in snapshot.rules.campaigns}
    placements = filter_placements(
        engine.targeter.place(
            stream.timeline, media=stream.stream_id, today=today, snapshot=snapshot
        ),
        stream.wanted,
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
