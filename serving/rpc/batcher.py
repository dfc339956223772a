"""Dynamic micro-batching for the gRPC server: many concurrent requests -> one model call.

Why: a model call costs about the same for 1 frame as for 16 on a GPU (and much less than 16
single calls on a CPU), and the models are not thread-safe. So every request handler (on the
asyncio event loop) hands its item to one ``MicroBatcher``; a collector task cuts a batch when
``max_batch`` items wait or ``max_wait_ms`` has passed since the oldest waiting item arrived, and
runs ``fn(batch)`` in ONE dedicated worker thread, off the event loop. While a batch runs, the
next one gathers, so under load batches fill up without waiting.

Contract of ``fn(items) -> results``:

- ``results`` has one entry per item, in order. An entry that is an ``Exception`` instance
  fails that item alone (its caller gets that exception); the other items get their results.
  This is how a batch function reports one bad frame without failing its neighbours.
- ``fn`` raising fails every item of the batch with that exception.
- A result list of the wrong length is a bug in ``fn``: every item fails with ``RuntimeError``.

Limits and lifecycle:

- ``max_queue`` bounds the items *waiting* for a batch (the running batch is not counted, so
  memory holds at most ``max_queue + max_batch`` items). A full queue makes ``submit`` raise
  ``Overloaded`` at once: it never blocks and never grows.
- ``deadline`` is an absolute ``time.monotonic()`` time. Items whose deadline has passed when
  their batch is cut are dropped before they reach ``fn``; their callers get ``DeadlineExceeded``.
- A caller that is cancelled (the client went away, the RPC deadline fired) is skipped: its item
  never reaches ``fn`` if it was still waiting.
- ``close()`` refuses new items (``Unavailable``), lets every accepted item finish, then stops
  the worker thread (unless the thread was lent: ``executor``).

Sharing the worker: ``executor`` lends the batcher a single-thread executor it does not own
(and never shuts down). Two batchers over one such executor run their batches one at a time on
the same thread, so two kinds of model work (the targeting models, the catalog's visual
features) batch separately yet never run a model concurrently with another.

Metrics hooks (all optional, called on the event loop): ``on_batch(size, seconds)`` after each
``fn`` call, ``on_queue_depth(depth)`` whenever the number of waiting items changes,
``on_dropped(reason)`` for each item dropped (``"deadline"``, ``"cancelled"``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from vision.errors import DeadlineExceeded, Overloaded, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH_LIMIT = 1024
"""Largest ``max_batch`` accepted (a bigger GPU batch gains nothing and risks memory)."""
MAX_WAIT_LIMIT_MS = 10_000.0
"""Largest ``max_wait_ms`` accepted, milliseconds."""
MAX_QUEUE_LIMIT = 1_000_000
"""Largest ``max_queue`` accepted (every limit is finite)."""


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    deadline: float | None
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher(Generic[T, R]):
    """Gathers items from concurrent ``submit`` calls into batches for ``fn`` (see module doc).

    ``max_batch``: most items per ``fn`` call, >= 1. ``max_wait_ms``: longest time the oldest
    waiting item waits for company before a partial batch is cut, >= 0 (0: cut at once, still
    batching whatever arrived meanwhile). ``max_queue``: most items waiting, >= 1.
    Create and use it from one asyncio event loop.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R | Exception]],
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        name: str = "model",
        on_batch: Callable[[int, float], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
        on_dropped: Callable[[str], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if not (1 <= max_batch <= MAX_BATCH_LIMIT):
            raise ValueError(f"max_batch must be in 1..{MAX_BATCH_LIMIT}, got {max_batch!r}")
        if not (0 <= max_wait_ms <= MAX_WAIT_LIMIT_MS) or math.isnan(max_wait_ms):
            raise ValueError(
                f"max_wait_ms must be in 0..{MAX_WAIT_LIMIT_MS:g} ms, got {max_wait_ms!r}"
            )
        if not (1 <= max_queue <= MAX_QUEUE_LIMIT):
            raise ValueError(f"max_queue must be in 1..{MAX_QUEUE_LIMIT}, got {max_queue!r}")
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.name = name
        self._on_batch = on_batch
        self._on_queue_depth = on_queue_depth
        self._on_dropped = on_dropped
        self._queue: collections.deque[_Pending[T, R]] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = executor
        self._owns_executor = executor is None
        self._closing = False
        self.batches = 0
        """Number of ``fn`` calls so far (for tests and logs)."""

    # --- public --------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Items waiting for a batch now (not counting the batch that is running)."""
        return len(self._queue)

    async def submit(self, item: T, deadline: float | None = None) -> R:
        """Queue ``item`` and wait for its result from ``fn``.

        ``deadline``: absolute ``time.monotonic()`` seconds, or None for none. Raises
        ``Overloaded`` at once when ``max_queue`` items already wait, ``Unavailable`` after
        ``close()``, ``DeadlineExceeded`` when the deadline passed before the item's batch ran,
        or whatever ``fn`` raised (or returned) for this item.
        """
        if self._closing:
            raise Unavailable(f"the {self.name} batcher is shutting down: retry on another server")
        if len(self._queue) >= self.max_queue:
            raise Overloaded(
                f"server busy: {len(self._queue)} requests already wait for the {self.name} "
                f"(queue limit {self.max_queue}); back off and retry"
            )
        if deadline is not None and deadline <= time.monotonic():
            raise DeadlineExceeded("the deadline passed before the request was queued")
        self._ensure_started()
        loop = asyncio.get_running_loop()
        pending: _Pending[T, R] = _Pending(item, loop.create_future(), deadline)
        self._queue.append(pending)
        self._depth_changed()
        assert self._wakeup is not None
        self._wakeup.set()
        # A cancelled caller cancels its future; the collector skips cancelled futures.
        return await pending.future

    async def close(self, timeout_s: float | None = None) -> None:
        """Refuse new items, finish every accepted one, then stop the worker thread.

        ``timeout_s``: how long that may take at most (None: as long as it takes). At the
        timeout the items still waiting fail with ``Unavailable`` and a batch still running
        is abandoned to its thread (its callers are gone: the server stopped them).
        """
        self._closing = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                self._fail_waiting(
                    Unavailable(f"the {self.name} batcher shut down before this request ran")
                )
                self._task.cancel()
                if self._executor is not None and self._owns_executor:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = None
                self._task = None
                return
            self._task = None
        if self._executor is not None and self._owns_executor:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _fail_waiting(self, exc: Exception) -> None:
        while self._queue:
            p = self._queue.popleft()
            if not p.future.done():
                p.future.set_exception(exc)
        self._depth_changed()

    # --- internals -----------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"onscreen-{self.name}"
                )
            self._task = asyncio.get_running_loop().create_task(
                self._collect(), name=f"batcher:{self.name}"
            )

    def _depth_changed(self) -> None:
        if self._on_queue_depth is not None:
            self._on_queue_depth(len(self._queue))

    def _dropped(self, reason: str) -> None:
        if self._on_dropped is not None:
            self._on_dropped(reason)

    async def _collect(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Wait for a full batch or for the oldest item's max wait, whichever comes first.
            cut_at = self._queue[0].enqueued + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closing:
                remaining = cut_at - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take_batch()
            if batch:
                await self._run(batch)

    def _take_batch(self) -> list[_Pending[T, R]]:
        """Pop up to ``max_batch`` live items, failing expired ones and skipping cancelled ones."""
        now = time.monotonic()
        batch: list[_Pending[T, R]] = []
        while self._queue and len(batch) < self.max_batch:
            p = self._queue.popleft()
            if p.future.done():  # the caller was cancelled
                self._dropped("cancelled")
                continue
            if p.deadline is not None and p.deadline <= now:
                late_ms = (now - p.deadline) * 1000
                p.future.set_exception(
                    DeadlineExceeded(
                        f"the deadline passed {late_ms:.0f} ms before the {self.name} could "
                        "take the request (it was dropped unprocessed)"
                    )
                )
                self._dropped("deadline")
                continue
            batch.append(p)
        self._depth_changed()
        return batch

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
        loop = asyncio.get_running_loop()
        items = [p.item for p in batch]
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._fn, items)
        except Exception as exc:  # fn failed: every item of this batch fails with it
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            results = None
        finally:
            self.batches += 1
            if self._on_batch is not None:
                self._on_batch(len(batch), time.perf_counter() - started)
        if results is None:
            return
        if len(results) != len(batch):
            err = RuntimeError(
                f"the {self.name} returned {len(results)} results for a batch of {len(batch)}"
            )
            log.error("%s", err)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        for p, r in zip(batch, results, strict=True):
            if p.future.done():  # cancelled while its batch ran: the result is discarded
                continue
            if isinstance(r, Exception):
                p.future.set_exception(r)
            else:
                p.future.set_result(r)
