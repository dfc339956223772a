"""The gRPC servicers: one class per service, one method per RPC, each converting protobuf to
domain objects and delegating to ``serving.rpc.handlers``. Every exception goes through
``serving.rpc.status.status_for`` (nothing escapes as UNKNOWN) and is counted by method and code.

Methods are typed with the generated messages (``targeting_pb2.TargetImageRequest``...) and
``grpc.aio.ServicerContext``, so mypy checks them against the ``.pyi`` stubs. A request that
is not a valid message (``serving.rpc.malformed``) reaches them as ``MalformedRequest`` and is
refused as INVALID_ARGUMENT with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from serving._proto.onscreen.v1 import (
    targeting_pb2,
    targeting_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
    visual_search_pb2,
    visual_search_pb2_grpc,
)
from serving.rpc import proto_convert as pc
from serving.rpc.config import MAX_STREAMS_PER_CALL
from serving.rpc.engine import ServerCore
from serving.rpc.handlers import (
    UPLOAD_DIR_PREFIX,
    LiveStream,
    analyze_image,
    check_campaign_filter,
    check_media_id,
    close_segments,
    deadline_of,
    receive_upload,
    resolve_media_path,
    scan_video,
    served_catalog,
    target_image,
)
from serving.rpc.malformed import MalformedRequest
from serving.rpc.status import status_for
from serving.rpc.visual_search import (
    ItemUpsert,
    delete_items,
    metadata_of,
    similar_items,
    upsert_items,
)
from vision.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)

if TYPE_CHECKING:
    from vision.catalog import SearchHit

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# --- servicers -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _observing(
    core: ServerCore, method: str, context: grpc.aio.ServicerContext
) -> AsyncIterator[None]:
    """Around one RPC: any exception becomes its status code (through ``status_for``), and the
    call is counted by method and code with its latency, whatever happened. A call cancelled
    because its deadline passed is counted as DEADLINE_EXCEEDED, not CANCELLED."""
    started = time.perf_counter()
    code = "OK"
    try:
        yield
    except asyncio.CancelledError:
        remaining = context.time_remaining()
        code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
        raise
    except grpc.aio.AbortError:
        code = _code_name(context)
        raise
    except Exception as exc:
        status, message = status_for(exc)
        code = status.name
        await context.abort(status, message)
    finally:
        core.metrics.observe_request(method, code, time.perf_counter() - started)


def _refuse_malformed(method: str, request: object, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, MalformedRequest):
        log.warning("%s: %s", method, request.message)  # never the peer: no IPs in logs
        raise InvalidArgument(request.message)


async def _checked(
    method: str, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    """A request stream that raises InvalidArgument at the first malformed message."""
    async for req in requests:
        _refuse_malformed(method, req, context)
        yield req


def _observed(method: str, *, streaming: bool = False) -> Callable[[F], F]:
    """Wrap an RPC method (unary, or bidi-streaming) in ``_observing``; malformed messages are
    refused there as INVALID_ARGUMENT."""

    def wrap(fn: F) -> F:
        if streaming:

            @functools.wraps(fn)
            async def stream_wrapper(self, request_iterator, context):  # noqa: ANN001, ANN202
                async with _observing(self.core, method, context):
                    async for msg in fn(self, _checked(method, request_iterator, context), context):
                        yield msg

            return stream_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        async def unary_wrapper(self, request, context):  # noqa: ANN001, ANN202
            async with _observing(self.core, method, context):
                _refuse_malformed(method, request, context)
                return await fn(self, request, context)

        return unary_wrapper  # type: ignore[return-value]

    return wrap


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


class TargetingServicer(targeting_pb2_grpc.TargetingServicer):
    """onscreen.v1.Targeting: converts messages and delegates to ``serving.rpc.handlers``."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    @_observed("TargetImage")
    async def TargetImage(  # noqa: N802
        self, request: targeting_pb2.TargetImageRequest, context: grpc.aio.ServicerContext
    ) -> targeting_pb2.TargetImageResponse:
        # options the server cannot honour are refused before any pixel is decoded
        if request.similar_items_count < 0:
            raise InvalidArgument(
                f"similar_items_count must be >= 0, got {request.similar_items_count}"
            )
        if request.similar_items_count:
            served_catalog(self.core, "similar_items_count")  # UNIMPLEMENTED without --catalog
        placements, facts, version, similar = await target_image(
            self.core,
            request.image,
            request.media_id,
            campaign_ids=list(request.campaign_ids),
            max_placements=request.max_placements,
            deadline=deadline_of(context),
            similar_items_count=request.similar_items_count,
        )
        response = targeting_pb2.TargetImageResponse(
            placements=pc.placements_to_proto(placements),
            rules_version=version,
            similar_items=_similar_to_proto(similar),
        )
        if request.include_facts:
            response.facts.CopyFrom(pc.facts_to_proto(facts))
        return response

    @_observed("ScanVideo", streaming=True)
    async def ScanVideo(  # noqa: N802
        self,
        request_iterator: AsyncIterator[targeting_pb2.ScanVideoRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[targeting_pb2.ScanVideoResponse]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("message") != "start":
            raise InvalidArgument(
                "the first ScanVideo message must be `start` (which video, and how)"
            )
        start = first.start
        engine = self.core.engine()
        snapshot = engine.targeter.snapshot
        media_id = check_media_id(start.media_id)
        wanted = check_campaign_filter(list(start.campaign_ids), snapshot)
        if start.store and self.core.store is None:
            raise FailedPrecondition(
                "store=true, but this server has no placement store: start it with --store PATH"
            )
        if start.store and self.core.store is not None and self.core.store.readonly:
            raise FailedPrecondition(
                "store=true, but this server's placement store is read-only (its disk is "
                "mounted read-only): scan without store, or make the store writable and restart"
            )
        deadline = deadline_of(context)
        source = start.WhichOneof("source")
        tmp: Path | None = None
        try:
            root = self.core.config.media_root
            if source == "media_root_path":
                path = resolve_media_path(root, start.media_root_path)
                received = 0
                names = {str(path): start.media_root_path}
            elif source == "upload":
                tmp = Path(tempfile.mkdtemp(prefix=UPLOAD_DIR_PREFIX))
                path = await receive_upload(requests, start.upload, tmp)
                received = start.upload.size_bytes
                names = {str(path): start.upload.filename or "the upload", str(tmp): "<upload>"}
            else:
                raise InvalidArgument("ScanVideo start needs a source: media_root_path or upload")
            if root is not None:
                names[str(root.resolve())] = "<media root>"
                names[str(root)] = "<media root>"
            async for event in scan_video(
                self.core, path, media_id, server_names=names, wanted=wanted, snapshot=snapshot,
                store=start.store, include_facts=start.include_facts, deadline=deadline,
                received_bytes=received,
            ):  # fmt: skip
                yield pc.scan_event_to_proto(event)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    @_observed("TargetStream", streaming=True)
    async def TargetStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[targeting_pb2.TargetStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[targeting_pb2.TargetStreamResponse]:
        streams: dict[str, LiveStream] = {}
        async for req in request_iterator:
            engine = self.core.engine()
            snapshot = engine.targeter.snapshot  # one snapshot for this message's frame and close
            sid = check_media_id(req.stream_id, what="stream_id")
            stream = streams.get(sid)
            if stream is None:
                if len(streams) >= MAX_STREAMS_PER_CALL:
                    raise InvalidArgument(
                        f"more than {MAX_STREAMS_PER_CALL} streams in one call: open another call"
                    )
                wanted = check_campaign_filter(list(req.campaign_ids), snapshot)
                stream = streams[sid] = LiveStream(sid, wanted)
            if req.jpeg:
                if not (req.t_s >= 0 and np.isfinite(req.t_s)):
                    raise InvalidArgument(
                        f"stream {sid!r}: t_s must be a finite time >= 0, got {req.t_s}"
                    )
                if req.t_s <= stream.last_t:
                    raise InvalidArgument(
                        f"stream {sid!r}: t_s went from {stream.last_t} to {req.t_s}; "
                        "frame times must increase"
                    )
                facts = await analyze_image(
                    self.core, req.jpeg, sid, deadline_of(context), snapshot, t=req.t_s,
                    source=f"stream {sid!r} frame at {req.t_s:.3f} s",
                )  # fmt: skip
                stream.timeline.append(facts)
                stream.last_t = req.t_s
            elif not req.end_of_stream:
                raise InvalidArgument(
                    f"stream {sid!r}: a message needs a jpeg frame or end_of_stream"
                )
            closed, decided = close_segments(
                engine, stream, self.core.today(), snapshot, final=req.end_of_stream
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
        engine = self.core.engine()
        snapshot = engine.targeter.snapshot
        for sid, stream in streams.items():
            closed, decided = close_segments(
                engine, stream, self.core.today(), snapshot, final=True
            )
            yield targeting_pb2.TargetStreamResponse(
                stream_id=sid, placements=pc.placements_to_proto(closed), decided_until_s=decided
            )

    @_observed("LookupPlacements")
    async def LookupPlacements(  # noqa: N802
        self, request: targeting_pb2.LookupPlacementsRequest, context: grpc.aio.ServicerContext
    ) -> targeting_pb2.LookupPlacementsResponse:
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
    """onscreen.v1.Vision: the models alone, no campaigns (logos are the served rules' brands)."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    @_observed("Analyze")
    async def Analyze(  # noqa: N802
        self, request: vision_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> vision_pb2.AnalyzeResponse:
        media_id = check_media_id(request.media_id, required=False)
        engine = self.core.engine()
        facts = await analyze_image(
            self.core, request.image, media_id, deadline_of(context), engine.targeter.snapshot
        )
        return vision_pb2.AnalyzeResponse(
            facts=pc.facts_to_proto(facts, include_embedding=request.include_embedding),
            models=engine.models(),
        )


def _similar_to_proto(hits: list[SearchHit]) -> list[visual_search_pb2.SimilarItem]:
    return [
        visual_search_pb2.SimilarItem(id=h.item.id, score=h.score, metadata=metadata_of(h.item))
        for h in hits
    ]


class VisualSearchServicer(visual_search_pb2_grpc.VisualSearchServicer):
    """onscreen.v1.VisualSearch over the server's ``--catalog`` (``serving.rpc.visual_search``);
    UNIMPLEMENTED, saying how to start one, on a server without a catalog."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core

    @_observed("SimilarItems")
    async def SimilarItems(  # noqa: N802
        self, request: visual_search_pb2.SimilarItemsRequest, context: grpc.aio.ServicerContext
    ) -> visual_search_pb2.SimilarItemsResponse:
        query = request.WhichOneof("query")
        region = None
        if query == "image" and request.HasField("region"):
            r = request.region
            region = (r.x0, r.y0, r.x1, r.y1)
        hits = await similar_items(
            self.core,
            image=request.image if query == "image" else None,
            item_id=request.item_id if query == "item_id" else None,
            region=region,
            k=request.k,
            deadline=deadline_of(context),
        )
        return visual_search_pb2.SimilarItemsResponse(items=_similar_to_proto(hits))

    @_observed("UpsertItems")
    async def UpsertItems(  # noqa: N802
        self, request: visual_search_pb2.UpsertItemsRequest, context: grpc.aio.ServicerContext
    ) -> visual_search_pb2.UpsertItemsResponse:
        served_catalog(self.core, "UpsertItems")
        for i, it in enumerate(request.items):
            if it.WhichOneof("image") == "image_url":
                raise InvalidArgument(
                    f"items[{i}] ({it.id!r}): image_url given, but URL fetching is off on this "
                    "server: send the picture as image_bytes"
                )
        items = [
            ItemUpsert(id=it.id, image=it.image_bytes, metadata=dict(it.metadata))
            for it in request.items
        ]
        outcome = await upsert_items(self.core, items, deadline_of(context))
        return visual_search_pb2.UpsertItemsResponse(
            inserted_count=outcome.inserted,
            replaced_count=outcome.replaced,
            errors=[
                visual_search_pb2.ItemError(id=p.id, index=p.index, message=p.message)
                for p in outcome.problems
            ],
        )

    @_observed("DeleteItems")
    async def DeleteItems(  # noqa: N802
        self, request: visual_search_pb2.DeleteItemsRequest, context: grpc.aio.ServicerContext
    ) -> visual_search_pb2.DeleteItemsResponse:
        deleted, missing = await delete_items(self.core, list(request.ids))
        return visual_search_pb2.DeleteItemsResponse(deleted_count=deleted, missing_ids=missing)
