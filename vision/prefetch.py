"""Overlap decoding with inference: run an iterator in a background thread, bounded.

Decoding video (PyAV, OpenCV) releases the GIL, so a producer thread keeps the CPU busy
decoding the next frames while the models work on the current batch. The queue is bounded so a
fast decoder never holds more than ``depth`` items in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

DEFAULT_PREFETCH_DEPTH = 32
"""Items decoded ahead of the consumer (keyframes, each one full-size RGB image)."""

_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = DEFAULT_PREFETCH_DEPTH) -> Iterator[T]:
    """Yield ``items`` in order, produced by a daemon thread at most ``depth`` items ahead.

    An exception in the producer is re-raised in the consumer at the point it happened.
    Closing the returned generator early stops the producer at its next item.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(obj: object) -> bool:
        while not stop.is_set():
            try:
                q.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Raised(exc))
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="onscreen-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            obj = q.get()
            if obj is _DONE:
                return
            if isinstance(obj, _Raised):
                raise obj.exc
            yield obj  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
