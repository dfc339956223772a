"""Malformed request messages become INVALID_ARGUMENT with one log line.

Why this is needed: grpc aio deserializes a unary request *before* the servicer runs, so a
``DecodeError`` from garbage bytes, a truncated message or invalid UTF-8 in a string field
escapes into grpc's own handler (UNKNOWN, full traceback logged per request); in a stream it
surfaces while the servicer iterates (INTERNAL through our mapping, again with a traceback).

So ``TolerantDeserializerInterceptor`` gives onscreen's own methods a request deserializer that
never raises: a message that does not parse arrives as a ``MalformedRequest`` holding the
reason, and the servicer wrapper (``serving.rpc.servicers``) refuses it as INVALID_ARGUMENT,
logging one line. Health and reflection keep grpc's own deserializers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError


@dataclass(frozen=True)
class MalformedRequest:
    """A request whose bytes are not a valid message of the method's request type."""

    message: str


def tolerant(deserializer: Callable[[bytes], Any], type_name: str) -> Callable[[bytes], Any]:
    """``deserializer`` that returns a MalformedRequest instead of raising on bad bytes."""

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, UnicodeDecodeError, ValueError) as exc:
            return MalformedRequest(
                f"the request is not a valid {type_name} message ({len(data)} bytes: "
                f"{str(exc) or type(exc).__name__}); check the client's onscreen.v1 stubs"
            )

    return parse


class TolerantDeserializerInterceptor(grpc.aio.ServerInterceptor):
    """Swaps the request deserializer of every method under ``services`` for ``tolerant``."""

    def __init__(self, services: Sequence[str]) -> None:
        self._prefixes = tuple(f"/{s}/" for s in services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method or ""
        if handler is None or handler.request_deserializer is None:
            return handler
        if not method.startswith(self._prefixes):
            return handler
        owner = getattr(handler.request_deserializer, "__self__", None)
        descriptor = getattr(owner, "DESCRIPTOR", None)
        name = getattr(descriptor, "full_name", method)
        return handler._replace(request_deserializer=tolerant(handler.request_deserializer, name))
