"""The ONE place that maps onscreen's exceptions to gRPC status codes.

Servicers raise (or let through) the project's exceptions; ``status_for`` turns each into a
status code and a message a person can act on, so no handler decides codes on its own and
nothing escapes as UNKNOWN.

    exception                                  status code
    -----------------------------------------  -------------------
    MediaError, RulesError, ValueError         INVALID_ARGUMENT   (the input is wrong)
    NotFound, FileNotFoundError                NOT_FOUND
    FailedPrecondition                         FAILED_PRECONDITION (server not set up for it)
    Overloaded                                 RESOURCE_EXHAUSTED (back off and retry)
    DeadlineExceeded, TimeoutError             DEADLINE_EXCEEDED  (the work was dropped)
    Unavailable, WeightsError,                 UNAVAILABLE        (not ready / shutting down /
      PlacementStoreError                                          a file it needs is missing)
    Unimplemented                              UNIMPLEMENTED
    ModelError, other OnscreenError            INTERNAL
    anything else                              INTERNAL with a short error id; the traceback
                                               is logged under that id

The serving-level exceptions below complete ``vision.errors``' hierarchy for request handling;
they live here, next to their codes.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from targeting.errors import RulesError
from vision.errors import MediaError, ModelError, OnscreenError, Overloaded, WeightsError

log = logging.getLogger(__name__)

MAX_STATUS_MESSAGE_CHARS = 2000
"""Longest status message sent (a RulesError can list many problems; trailers stay small)."""


class NotFound(OnscreenError):
    """The request names something the server does not have (a media never scanned, a file)."""


class FailedPrecondition(OnscreenError):
    """The server is not configured for this request (no placement store, no media root)."""


class Unavailable(OnscreenError):
    """The server cannot take the request now: still loading models, or shutting down."""


class DeadlineExceeded(OnscreenError):
    """The caller's deadline passed before the work ran; the work was dropped."""


class Unimplemented(OnscreenError):
    """The RPC is declared in the contract but not served by this release."""


def _store_error_type() -> type[Exception] | None:
    try:
        from serving.placement_store import PlacementStoreError
    except ImportError:  # pragma: no cover - the store is part of the package
        return None
    return PlacementStoreError


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message for ``exc``; unexpected exceptions are logged with an id."""
    code = _code_for(exc)
    if code is None:
        error_id = uuid.uuid4().hex[:12]
        log.error("internal error %s", error_id, exc_info=exc)
        return (
            grpc.StatusCode.INTERNAL,
            f"internal error {error_id} ({type(exc).__name__}); the server log has the details",
        )
    message = str(exc) or type(exc).__name__
    if code is grpc.StatusCode.INTERNAL:
        log.error("%s: %s", type(exc).__name__, message)
    if len(message) > MAX_STATUS_MESSAGE_CHARS:
        message = message[: MAX_STATUS_MESSAGE_CHARS - 3] + "..."
    return code, message


def _code_for(exc: BaseException) -> grpc.StatusCode | None:
    store_error = _store_error_type()
    if isinstance(exc, MediaError | RulesError | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFound | FileNotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, FailedPrecondition):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, DeadlineExceeded | TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, Unavailable | WeightsError):
        return grpc.StatusCode.UNAVAILABLE
    if store_error is not None and isinstance(exc, store_error):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, Unimplemented):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(exc, ModelError | OnscreenError):
        return grpc.StatusCode.INTERNAL
    return None
