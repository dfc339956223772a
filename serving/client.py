"""A small typed Python client for ``onscreen serve``: what an ad-server team copies.

Answers come back as the project's own types (``targeting.types.Placement``) and failures as one
exception type, ``ClientError``, carrying the gRPC status code and the server's message, so
callers branch on ``err.code`` (``RESOURCE_EXHAUSTED`` -> back off, ``INVALID_ARGUMENT`` -> drop
the request, ``UNAVAILABLE`` -> try another replica) without touching grpc internals.

    with OnscreenClient("localhost:50051", api_key="...") as client:
        result = client.target_image(jpeg_bytes)           # id: the image's sha256
        for p in result.placements:
            print(p.campaign, p.score, [r.what for r in p.reasons])
        for event in client.scan_path("2026/ads/clip.mp4"):  # id: the path
            if event.placement is not None:
                print(event.placement.campaign, event.placement.start_s)

Scan events are ``serving.scan_events.ScanEvent``, the same type the server's handler yields.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving._proto.onscreen.v1 import (
    common_pb2,
    targeting_pb2,
    targeting_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
)
from serving.rpc.config import API_KEY_METADATA
from serving.rpc.proto_convert import placement_from_proto, scan_event_from_proto
from serving.scan_events import ScanEvent
from targeting.types import Placement
from vision.errors import OnscreenError

__all__ = ["ClientError", "OnscreenClient", "ScanEvent", "TargetResult"]

DEFAULT_TIMEOUT_S = 2.0
"""Deadline of one unary call, seconds: an ad server's budget, never unlimited."""
DEFAULT_SCAN_TIMEOUT_S = 600.0
"""Deadline of one ScanVideo call, seconds."""
MAX_MESSAGE_BYTES = 21 * 1024 * 1024
"""Largest message sent or received (images up to 20 MiB, plus framing)."""
UPLOAD_CHUNK_BYTES = 1024 * 1024
"""ScanVideo upload chunk size (the server accepts at most 1 MiB a chunk)."""


class ClientError(OnscreenError):
    """A call failed; ``code`` is the gRPC status code, the message is the server's."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(f"{code.name}: {message}")


@dataclass(frozen=True)
class TargetResult:
    """TargetImage's answer: placements in rank order, the facts if asked, the rules version."""

    placements: tuple[Placement, ...]
    facts: common_pb2.FrameFacts | None
    rules_version: str


class OnscreenClient:
    """Synchronous client; thread-safe (one channel, many calls)."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        tls: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        if tls or root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata = ((API_KEY_METADATA, api_key),) if api_key else ()
        self.timeout_s = timeout_s
        self._targeting = targeting_pb2_grpc.TargetingStub(self._channel)
        self._vision = vision_pb2_grpc.VisionStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __enter__(self) -> OnscreenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request, timeout_s: float | None):  # noqa: ANN001, ANN202
        try:
            return method(request, timeout=timeout_s or self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as err:
            raise ClientError(err.code(), err.details() or "") from None

    def health(self, service: str = "", *, timeout_s: float | None = None) -> str:
        """``SERVING``, ``NOT_SERVING`` (still loading, or shutting down), or ``SERVICE_UNKNOWN``."""
        req = health_pb2.HealthCheckRequest(service=service)
        resp = self._call(self._health.Check, req, timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def target_image(
        self,
        image: bytes,
        *,
        media_id: str = "",
        campaign_ids: Sequence[str] = (),
        max_placements: int = 0,
        include_facts: bool = False,
        timeout_s: float | None = None,
    ) -> TargetResult:
        """Placements for one image (JPEG/PNG/WebP bytes), best first. Without ``media_id``
        the server reports them under the image's sha256 (hex)."""
        req = targeting_pb2.TargetImageRequest(
            image=image,
            media_id=media_id,
            campaign_ids=list(campaign_ids),
            max_placements=max_placements,
            include_facts=include_facts,
        )
        resp = self._call(self._targeting.TargetImage, req, timeout_s)
        return TargetResult(
            tuple(placement_from_proto(p) for p in resp.placements),
            resp.facts if include_facts and resp.HasField("facts") else None,
            resp.rules_version,
        )

    def analyze(self, image: bytes, *, timeout_s: float | None = None) -> common_pb2.FrameFacts:
        """What the models see in an image (faces, logos, safety, concepts)."""
        resp = self._call(self._vision.Analyze, vision_pb2.AnalyzeRequest(image=image), timeout_s)
        return resp.facts

    def lookup(
        self, media_id: str, t_s: float | None = None, *, timeout_s: float | None = None
    ) -> list[Placement]:
        """Placements stored by an earlier scan (all, or those covering ``t_s``).

        Raises ClientError with ``NOT_FOUND`` for a media that was never scanned.
        """
        req = targeting_pb2.LookupPlacementsRequest(media_id=media_id)
        if t_s is not None:
            req.t_s = t_s
        resp = self._call(self._targeting.LookupPlacements, req, timeout_s)
        return [placement_from_proto(p) for p in resp.placements]

    def scan_path(
        self,
        path: str,
        *,
        media_id: str = "",
        store: bool = False,
        timeout_s: float = DEFAULT_SCAN_TIMEOUT_S,
    ) -> Iterator[ScanEvent]:
        """Scan a video the server can read under its media root; events as they come.
        ``path`` is relative to the media root; it is also the media id unless one is given."""
        start = targeting_pb2.ScanVideoStart(
            media_id=media_id or path, media_root_path=path, store=store
        )
        yield from self._scan([targeting_pb2.ScanVideoRequest(start=start)], timeout_s)

    def scan_upload(
        self,
        file: Path,
        *,
        media_id: str = "",
        store: bool = False,
        timeout_s: float = DEFAULT_SCAN_TIMEOUT_S,
    ) -> Iterator[ScanEvent]:
        """Upload a local video in chunks and scan it; events as they come. The file name is
        the media id unless one is given."""
        size = file.stat().st_size
        upload = targeting_pb2.ScanVideoUpload(size_bytes=size, filename=file.name)
        start = targeting_pb2.ScanVideoStart(
            media_id=media_id or file.name, upload=upload, store=store
        )

        def requests() -> Iterator[targeting_pb2.ScanVideoRequest]:
            yield targeting_pb2.ScanVideoRequest(start=start)
            with open(file, "rb") as f:
                while chunk := f.read(UPLOAD_CHUNK_BYTES):
                    yield targeting_pb2.ScanVideoRequest(chunk=chunk)

        yield from self._scan(requests(), timeout_s)

    def _scan(self, requests, timeout_s: float) -> Iterator[ScanEvent]:  # noqa: ANN001
        try:
            for msg in self._targeting.ScanVideo(
                iter(requests), timeout=timeout_s, metadata=self._metadata
            ):
                event = scan_event_from_proto(msg)
                if event is not None:
                    yield event
        except grpc.RpcError as err:
            raise ClientError(err.code(), err.details() or "") from None
