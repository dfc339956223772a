"""The ONE place that maps onscreen's exceptions to gRPC status codes.

Servicers raise (or let through) the project's exceptions (``vision.errors``, the one tree);
``status_for`` turns each into a status code and a message a person can act on, so no handler
decides codes on its own and nothing escapes as UNKNOWN.

    exception                                  status code
    -----------------------------------------  -------------------
    InvalidArgument, MediaError, RulesError    INVALID_ARGUMENT   (the input is wrong)
    NotFound                                   NOT_FOUND
    FailedPrecondition                         FAILED_PRECONDITION (server not set up for it)
    Overloaded                                 RESOURCE_EXHAUSTED (back off and retry)
    DeadlineExceeded                           DEADLINE_EXCEEDED  (the work was dropped)
    Unavailable, WeightsError,                 UNAVAILABLE        (not ready / shutting down /
      PlacementStoreError, CatalogError                            a file it needs is unusable)
    Unimplemented                              UNIMPLEMENTED
    ModelError, any other OnscreenError        INTERNAL
    anything else (ValueError included)        INTERNAL with a short error id; the traceback
                                               is logged once under that id

A bare ``ValueError`` from our own code is a bug, not the client's fault: request checks raise
``InvalidArgument`` with a message naming the field.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from vision.errors import (
    CatalogError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MediaError,
    ModelError,
    NotFound,
    OnscreenError,
    Overloaded,
    PlacementStoreError,
    RulesError,
    Unavailable,
    Unimplemented,
    WeightsError,
)

log = logging.getLogger(__name__)

MAX_STATUS_MESSAGE_CHARS = 2000
"""Longest status message sent (a RulesError can list many problems; trailers stay small)."""

STATUS_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (MediaError, grpc.StatusCode.INVALID_ARGUMENT),
    (RulesError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (WeightsError, grpc.StatusCode.UNAVAILABLE),
    (PlacementStoreError, grpc.StatusCode.UNAVAILABLE),
    (CatalogError, grpc.StatusCode.UNAVAILABLE),
    (Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (ModelError, grpc.StatusCode.INTERNAL),
    (OnscreenError, grpc.StatusCode.INTERNAL),
)
"""Exception class -> status code, most specific first (the first ``isinstance`` match wins)."""


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message for ``exc``; unexpected exceptions are logged with an id."""
    code = code_for(exc)
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


def code_for(exc: BaseException) -> grpc.StatusCode | None:
    """The status code of one of our exceptions, or None for anything else (a bug)."""
    for cls, code in STATUS_TABLE:
        if isinstance(exc, cls):
            return code
    return None
