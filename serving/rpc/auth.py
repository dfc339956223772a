"""Shared-secret API key, checked in constant time from request metadata.

Health and reflection stay open: load balancers and orchestrators probe health without
credentials, and grpcurl needs reflection to find the methods. Neither carries a placement,
a fact or a rules detail: health says SERVING or not, reflection lists the public contract
(the same ``.proto`` files that ship with onscreen). Every onscreen.v1 method needs the key.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health

from serving.rpc.config import API_KEY_METADATA
from serving.rpc.metrics import ServerMetrics
from vision.errors import StartupError

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


def resolve_api_key(explicit: str | None, key_file: Path | None) -> str | None:
    """The API key from ``--api-key``, ``--api-key-file`` or $ONSCREEN_API_KEY (first given),
    None when none is (auth off). An empty key is a StartupError, never "auth off": ``--api-key
    "$KEY"`` with KEY unset must not open the server. The file's one trailing newline (``echo``
    writes it) is dropped; the key itself never appears in a message."""
    from serving.rpc.config import API_KEY_ENV

    if explicit is not None and key_file is not None:
        raise StartupError("--api-key and --api-key-file both given: pick one")
    if explicit is not None:
        if not explicit.strip():
            raise StartupError(
                "--api-key is empty (an unset variable?): give the key, use --api-key-file, "
                "or leave it out to run without auth"
            )
        return explicit
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise StartupError(f"--api-key-file {key_file}: cannot read it ({why})") from exc
        key = text.removesuffix("\n").removesuffix("\r")
        if not key.strip():
            raise StartupError(f"--api-key-file {key_file} is empty: write the key into it")
        if "\n" in key:
            raise StartupError(f"--api-key-file {key_file}: the key must be one line")
        return key
    value = os.environ.get(API_KEY_ENV)
    if value is None:
        return None
    if not value.strip():
        raise StartupError(
            f"${API_KEY_ENV} is set but empty: set the key, or unset it to run without auth"
        )
    return value
