"""The one mapping from the error tree to gRPC status codes, as a table."""

from __future__ import annotations

import logging

import grpc
import pytest

from serving.rpc.status import MAX_STATUS_MESSAGE_CHARS, status_for
from vision.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MediaError,
    ModelError,
    NotFound,
    OnscreenError,
    Overloaded,
    PlacementStoreError,
    RuleProblem,
    RulesError,
    StartupError,
    Unavailable,
    Unimplemented,
    WeightsError,
)

C = grpc.StatusCode


@pytest.mark.parametrize(
    "exc, code",
    [
        (InvalidArgument("media_id is required"), C.INVALID_ARGUMENT),
        (MediaError("image: truncated PNG"), C.INVALID_ARGUMENT),
        (RulesError([RuleProblem("campaigns/a.yaml", 3, "id", "missing")]), C.INVALID_ARGUMENT),
        (NotFound("media 'x' was never scanned"), C.NOT_FOUND),
        (FailedPrecondition("no placement store"), C.FAILED_PRECONDITION),
        (Overloaded("server busy"), C.RESOURCE_EXHAUSTED),
        (DeadlineExceeded("the deadline passed"), C.DEADLINE_EXCEEDED),
        (Unavailable("still loading"), C.UNAVAILABLE),
        (WeightsError("weights missing"), C.UNAVAILABLE),
        (PlacementStoreError("store is locked"), C.UNAVAILABLE),
        (Unimplemented("not served"), C.UNIMPLEMENTED),
        (ModelError("model returned NaN"), C.INTERNAL),
        (StartupError("port in use"), C.INTERNAL),
        (OnscreenError("something of ours"), C.INTERNAL),
    ],
)
def test_each_error_has_one_code_and_keeps_its_message(exc: Exception, code: C) -> None:
    got, message = status_for(exc)
    assert got is code
    assert message == str(exc)


@pytest.mark.parametrize(
    "exc", [ValueError("bad"), TypeError("bad"), KeyError("k"), RuntimeError()]
)
def test_a_bare_python_error_is_our_bug_not_the_clients(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="serving.rpc.status"):
        code, message = status_for(exc)
    assert code is C.INTERNAL
    assert message.startswith("internal error ") and type(exc).__name__ in message
    error_id = message.split()[2]
    assert [r for r in caplog.records if error_id in r.getMessage()], "the id is logged"


def test_long_messages_are_cut_to_the_limit() -> None:
    _, message = status_for(InvalidArgument("x" * (MAX_STATUS_MESSAGE_CHARS * 2)))
    assert len(message) == MAX_STATUS_MESSAGE_CHARS and message.endswith("...")
