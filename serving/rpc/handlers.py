"""What each RPC does, as plain async functions over domain objects (no protobuf in, no
status codes out): servicers convert and delegate here, tests can call these directly.

Image: bytes -> ``decode_image`` on a CPU thread -> one ``Frame`` -> the shared micro-batcher
-> ``FrameFacts`` -> ``Targeter.place``. ScanVideo keyframes and TargetStream frames go
through the same batcher, so they share model batches with image requests.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePath
from typing import Any

import grpc

from serving._proto.onscreen.v1 import targeting_pb2
from serving.rpc.config import (
    DEFAULT_MAX_PLACEMENTS,
    MAX_CAMPAIGN_FILTER,
    MAX_PLACEMENTS,
    MAX_UPLOAD_CHUNK_BYTES,
    SCAN_PROGRESS_EVERY_S,
    STREAM_WINDOW_S,
)
from serving.rpc.engine import Engine, ServerCore
from targeting.types import Placement
from vision.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OnscreenError,
    Overloaded,
)
from vision.image_decode import decode_image
from vision.limits import MAX_MEDIA_ID_CHARS, MAX_VIDEO_BYTES
from vision.types import Frame, FrameFacts, KeyframeReason

log = logging.getLogger(__name__)

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


def check_campaign_filter(ids: list[str] | tuple[str, ...], engine: Engine) -> frozenset[str]:
    """The campaign ids a request restricts itself to; unknown ids are INVALID_ARGUMENT."""
    if len(ids) > MAX_CAMPAIGN_FILTER:
        raise InvalidArgument(f"{len(ids)} campaign ids, over the {MAX_CAMPAIGN_FILTER} limit")
    wanted = frozenset(ids)
    known = {c.id for c in engine.targeter.compiled.rules.campaigns}
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
        raise InvalidArgument(
            f"max_placements must be in 0..{MAX_PLACEMENTS}, got {max_placements}"
        )
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
        raise InvalidArgument("media_root_path is empty: give a path relative to the media root")
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
