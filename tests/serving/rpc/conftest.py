"""Fixtures shared by the rpc tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serving.rpc.grpc_fixtures import ServerThread


@pytest.fixture(scope="module")
def loop() -> Iterator[ServerThread]:
    """One asyncio loop thread per test module, running its servers."""
    thread = ServerThread()
    yield thread
    thread.close()
