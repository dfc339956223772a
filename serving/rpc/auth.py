"""Shared-secret API key, checked in constant time from request metadata.

Health and reflection stay open: load balancers and grpcurl must reach them without a key.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health

from serving.rpc.config import API_KEY_METADATA
from serving.rpc.metrics import ServerMetrics

log = logging.getLogger(__name__)

HEALTH_SERVICE = health.SERVICE_NAME
AUTH_EXEMPT_PREFIXES = (f"/{HEALTH_SERVICE}/", "/grpc.reflection.")
"""Methods callable without the API key: load balancers and grpcurl must see health/reflection."""

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


def environ_api_key(explicit: str | None) -> str | None:
    """The API key from ``--api-key``, else from $ONSCREEN_API_KEY, else None (auth off)."""
    from serving.rpc.config import API_KEY_ENV

    return explicit or os.environ.get(API_KEY_ENV) or None
