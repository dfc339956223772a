from __future__ import annotations

import threading
import time

import pytest

from vision.prefetch import prefetch


def test_order_and_completeness() -> None:
    assert list(prefetch(range(100), depth=3)) == list(range(100))


def test_producer_error_reaches_consumer_after_good_items() -> None:
    def gen():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(gen(), depth=2):
            got.append(x)
    assert got == [1, 2]


def test_bounded_ahead_and_stops_when_consumer_leaves() -> None:
    produced = []

    def gen():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = prefetch(gen(), depth=4)
    assert next(it) == 0
    time.sleep(0.2)
    # consumer took 1, queue holds at most 4, producer may hold one more in hand
    assert len(produced) <= 1 + 4 + 1
    it.close()
    n = len(produced)
    time.sleep(0.2)
    assert len(produced) == n
    assert not any(t.name == "onscreen-prefetch" and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("depth", [0, -1])
def test_depth_must_be_positive(depth: int) -> None:
    with pytest.raises(ValueError, match="depth must be >= 1"):
        list(prefetch([1], depth=depth))
