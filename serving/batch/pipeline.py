"""The batch scan's pipeline across media: the model never waits for one video's decoder.

    decode threads (``decode_workers``; each drives its own isolated decode worker process)
        -> one bounded queue of keyframes tagged by media (``DECODE_AHEAD`` frames at most)
    model loop (the calling thread): batches formed *across* media, up to the analyzer's batch
        size; a smaller batch runs only when no keyframe is waiting
        -> each media's timeline, once its last keyframe is analyzed
    writer thread: matching (:func:`~serving.batch.scan.media_result`) as timelines complete,
        then writing (:func:`~serving.batch.scan.commit_result`) in plan order

Why this shape. Decoding is CPU work in other processes (PyAV/FFmpeg, held to the limits of
:mod:`serving.batch.isolated_decode`); the decode threads only wait on them, so several
media decode while the models work. The models run in one thread (they use every core
themselves, and a GPU wants one stream of full batches). Matching and writing run beside
them: a media's placements are found while the next batch runs.

Why plan order for the writes: the JSONL output, the store and the checkpoint then hold the
same lines in the same order as a one-media-at-a-time scan, whatever the decoders' timing.
A media that completes early waits as its placements (its keyframes are gone), so memory is
bounded by placements, not frames. A crash loses only what was not checkpointed, which
``--resume`` redoes (:mod:`serving.batch.checkpoint`).

Failures: a media that fails to decode drops its keyframes still queued and becomes its error
line; the scan goes on. A write that fails (a store locked or full) stops the scan: the
exception is raised in the calling thread, nothing after that media is checkpointed.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, cast

from serving.batch.checkpoint import JsonlSink
from serving.batch.isolated_decode import DecodeLimits, DecodePool
from serving.batch.progress import ScanProgress, StageTimes
from serving.media_scan import keyframes_of
from serving.targeter import RulesSnapshot, Targeter, analyze_with_snapshots
from vision.analyze import TextMemory
from vision.types import Frame, FrameFacts

if TYPE_CHECKING:
    from serving.batch.scan import MediaResult, ScanItem
    from serving.placement_store import PlacementStore

__all__ = ["DECODE_AHEAD", "ScanPipeline", "default_decode_workers"]

DECODE_AHEAD = 16
"""Keyframes decoded ahead of the models, all media together (full-size RGB frames)."""
_POLL_S = 0.1
"""How often blocked threads look whether the scan is stopping."""


def default_decode_workers() -> int:
    """Decode workers when ``--decode-workers`` is not given: half the cores (the models use
    the rest), at least 1, at most 4 (past that one model loop is the bottleneck anyway)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclass
class _Timeline:
    """One media between its first keyframe and its result (model-loop state)."""

    index: int
    item: ScanItem
    snapshot: RulesSnapshot
    started: float
    facts: dict[int, FrameFacts] = field(default_factory=dict)
    queued: int = 0
    expected: int | None = None
    duration_s: float | None = None


@dataclass
class _Totals:
    decode_s: float = 0.0
    models_s: float = 0.0
    matching_s: float = 0.0
    writing_s: float = 0.0
    video_s: float = 0.0
    keyframes: int = 0
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **seconds: float) -> None:
        with self.lock:
            for name, value in seconds.items():
                setattr(self, name, getattr(self, name) + value)

    def freeze(self, wall_s: float) -> StageTimes:
        return StageTimes(
            decode_s=self.decode_s,
            models_s=self.models_s,
            matching_s=self.matching_s,
            writing_s=self.writing_s,
            wall_s=wall_s,
            video_s=self.video_s,
            keyframes=self.keyframes,
            batches=self.batches,
        )


class _Stopped(Exception):
    """The scan is stopping: a producer gives up its put."""


def _duration_in_process(path: os.PathLike[str]) -> float | None:
    from vision.media import is_video_file
    from vision.video_decode import probe_video

    try:
        return probe_video(path).duration_s if is_video_file(path) else None
    except Exception:  # noqa: BLE001 - decoding reports the file's problem itself
        return None


class ScanPipeline:
    """One pipelined scan of ``todo`` (plan position, item): :meth:`run` it once (module doc).

    ``decode_workers``: decode threads, each with its own worker process (capped at the number
    of media); ``progress`` hears of keyframes and media; ``on_result`` sees each result after
    it is written.
    """

    def __init__(
        self,
        targeter: Targeter,
        todo: Sequence[tuple[int, ScanItem]],
        *,
        sink: JsonlSink,
        store: PlacementStore | None,
        today: date,
        explain: bool,
        decode: DecodeLimits | None,
        decode_workers: int,
        progress: ScanProgress,
        on_result: Callable[[MediaResult], None] | None = None,
    ) -> None:
        self.targeter = targeter
        self.todo = list(todo)
        self.sink, self.store, self.today, self.explain = sink, store, today, explain
        self.decode, self.n_workers = decode, max(1, min(decode_workers, len(todo) or 1))
        self.progress, self.on_result = progress, on_result
        self.frames: queue.Queue[tuple[str, int, object]] = queue.Queue(maxsize=DECODE_AHEAD)
        self.done: queue.Queue[tuple[str, object]] = queue.Queue()
        self.stop = threading.Event()
        self.items = dict(self.todo)
        self.jobs: Iterator[tuple[int, ScanItem]] = iter(self.todo)
        self.jobs_lock = threading.Lock()
        self.totals = _Totals()
        self.memory: TextMemory = {}  # the OCR schedule per media, across mixed batches
        self.results: list[MediaResult] = []
        self.write_error: BaseException | None = None

    # --- decode threads -------------------------------------------------------------------

    def _put(self, msg: tuple[str, int, object]) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.frames.put(msg, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _next_job(self) -> tuple[int, ScanItem] | None:
        with self.jobs_lock:
            return next(self.jobs, None)

    def _decode_loop(self) -> None:
        pool = DecodePool(self.decode) if self.decode is not None else None
        try:
            while not self.stop.is_set():
                job = self._next_job()
                if job is None:
                    break
                self._decode_one(job, pool)
        except _Stopped:
            pass
        finally:
            if pool is not None:
                pool.close()
            while True:  # the model loop counts these; once stopping, it may be gone
                try:
                    self.frames.put(("quit", -1, None), timeout=_POLL_S)
                    break
                except queue.Full:
                    if self.stop.is_set():
                        break

    def _decode_one(self, job: tuple[int, ScanItem], pool: DecodePool | None) -> None:
        index, item = job
        media, path, _metadata, problem = item
        if problem is not None:
            self._put(("problem", index, str(problem)))
            return
        self._put(("start", index, time.perf_counter()))
        decoder = pool.keyframes if pool is not None else None
        n = 0
        waited = 0.0
        try:
            frames = iter(keyframes_of(self.targeter.pipeline, path, media, decoder))
            while True:
                t0 = time.perf_counter()
                frame = next(frames, None)
                waited += time.perf_counter() - t0
                if frame is None:
                    break
                self._put(("frame", index, frame))
                n += 1
        except _Stopped:
            raise
        except Exception as exc:  # noqa: BLE001 - the media's error line (scan.failed)
            self.totals.add(decode_s=waited)
            self._put(("failed", index, exc))
            return
        self.totals.add(decode_s=waited)
        duration = pool.duration_s if pool is not None else _duration_in_process(path)
        self._put(("end", index, (n, duration)))

    # --- the model loop (calling thread) ----------------------------------------------------

    def run(self) -> tuple[list[MediaResult], StageTimes]:
        """Scan every media; returns the results in plan order and where the time went. Raises
        what a write raised (the scan stopped there)."""
        start = time.perf_counter()
        writer = threading.Thread(target=self._write_loop, name="onscreen-scan-writer")
        decoders = [
            threading.Thread(target=self._decode_loop, name=f"onscreen-decode-{k}", daemon=True)
            for k in range(self.n_workers)
        ]
        writer.start()
        for t in decoders:
            t.start()
        try:
            self._model_loop()
        finally:
            self.stop.set()  # decoders stop at their next keyframe; what is complete is written
            self.done.put(("quit", None))
            writer.join()
            for t in decoders:
                t.join(timeout=5)
        if self.write_error is not None:
            raise self.write_error
        return self.results, self.totals.freeze(time.perf_counter() - start)

    def _model_loop(self) -> None:
        open_: dict[int, _Timeline] = {}
        batch: list[tuple[int, Frame]] = []
        quits = 0
        batch_size = max(1, self.targeter.models.batch_size)
        while quits < self.n_workers:
            if self.write_error is not None:
                self.stop.set()
                return
            try:
                kind, index, payload = self.frames.get(block=not batch, timeout=_POLL_S)
            except queue.Empty:
                if batch:  # nothing waiting: run what there is rather than idle
                    self._analyze(batch, open_)
                    batch = []
                continue
            if kind == "frame":
                assert isinstance(payload, Frame)
                if index in open_:
                    open_[index].queued += 1
                    batch.append((index, payload))
                    if len(batch) >= batch_size:
                        self._analyze(batch, open_)
                        batch = []
            elif kind == "start":
                assert isinstance(payload, float)
                open_[index] = _Timeline(index, self.items[index], self.targeter.snapshot, payload)
            elif kind == "end":
                n, duration = cast("tuple[int, float | None]", payload)
                if index in open_:  # else the models failed it already
                    tl = open_[index]
                    tl.expected, tl.duration_s = n, duration
                    self._finish_if_complete(tl, open_)
            elif kind == "failed":
                if index in open_:
                    batch = [(i, f) for i, f in batch if i != index]  # its frames are moot
                    self._fail(index, payload, open_)
            elif kind == "problem":
                self.done.put(("problem", (index, payload)))
            elif kind == "quit":
                quits += 1
        if batch:
            self._analyze(batch, open_)

    def _analyze(self, batch: list[tuple[int, Frame]], open_: dict[int, _Timeline]) -> None:
        """One model call over ``batch``. If it raises, each media's frames are retried alone
        so only the media the models fail on becomes an error line (as scanning one media at
        a time would have it)."""
        t0 = time.perf_counter()
        try:
            facts = analyze_with_snapshots(
                self.targeter.models, [(f, open_[i].snapshot) for i, f in batch], self.memory
            )
        except Exception:  # noqa: BLE001 - narrowed down per media below
            facts = None
        self.totals.add(models_s=time.perf_counter() - t0, keyframes=len(batch), batches=1)
        if facts is None:
            self._analyze_apart(batch, open_)
            return
        self.progress.add_keyframes(len(batch))
        self._record(batch, facts, open_)

    def _analyze_apart(self, batch: list[tuple[int, Frame]], open_: dict[int, _Timeline]) -> None:
        groups: dict[int, list[tuple[int, Frame]]] = {}
        for i, f in batch:
            groups.setdefault(i, []).append((i, f))
        for i, group in groups.items():
            tl = open_[i]
            try:
                facts = analyze_with_snapshots(
                    self.targeter.models, [(f, tl.snapshot) for _, f in group], self.memory
                )
            except Exception as exc:  # noqa: BLE001 - this media's error line
                self._fail(i, exc, open_)
                continue
            self._record(group, facts, open_)

    def _record(
        self, batch: list[tuple[int, Frame]], facts: list[FrameFacts], open_: dict[int, _Timeline]
    ) -> None:
        touched: dict[int, _Timeline] = {}
        for (i, frame), fact in zip(batch, facts, strict=True):
            tl = open_[i]
            tl.facts[frame.index] = fact
            touched[i] = tl
        for tl in touched.values():
            self._finish_if_complete(tl, open_)

    def _fail(self, index: int, error: object, open_: dict[int, _Timeline]) -> None:
        tl = open_.pop(index)
        self.memory.pop(tl.item[0], None)
        self.done.put(("failed", (tl, error)))

    def _finish_if_complete(self, tl: _Timeline, open_: dict[int, _Timeline]) -> None:
        if tl.expected is not None and len(tl.facts) == tl.expected:
            del open_[tl.index]
            self.memory.pop(tl.item[0], None)
            self.done.put(("timeline", tl))

    # --- the writer thread ----------------------------------------------------------------------

    def _write_loop(self) -> None:
        from serving.batch.scan import MediaResult, commit_result, failed, media_result

        order = [index for index, _ in self.todo]
        items = self.items
        ready: dict[int, MediaResult] = {}
        next_pos = 0
        while True:
            kind, payload = self.done.get()
            if kind == "quit":
                return
            if self.write_error is not None:
                continue  # drain: the scan is stopping
            t0 = time.perf_counter()
            if kind == "timeline":
                assert isinstance(payload, _Timeline)
                tl = payload
                media, path, metadata, _ = tl.item
                facts = [tl.facts[k] for k in sorted(tl.facts)]
                result = media_result(
                    self.targeter,
                    path,
                    media,
                    facts,
                    today=self.today,
                    explain=self.explain,
                    snapshot=tl.snapshot,
                    started=tl.started,
                )
                result = replace(result, duration_s=tl.duration_s, metadata=metadata)
                index = tl.index
            elif kind == "failed":
                tl, error = cast("tuple[_Timeline, BaseException]", payload)
                media, path, metadata, _ = tl.item
                result = replace(
                    failed(media, path, error, time.perf_counter() - tl.started),
                    metadata=metadata,
                )
                index = tl.index
            else:  # "problem": a bad manifest line
                index, message = cast("tuple[int, str]", payload)
                media, path, metadata, _ = items[index]
                result = MediaResult(media, path, error=str(message))
            self.totals.add(matching_s=time.perf_counter() - t0)
            ready[index] = result
            try:
                while next_pos < len(order) and order[next_pos] in ready:
                    self._commit(ready.pop(order[next_pos]), commit_result)
                    next_pos += 1
            except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
                self.write_error = exc
                self.stop.set()

    def _commit(self, result: MediaResult, commit_result: Callable[..., None]) -> None:
        t0 = time.perf_counter()
        commit_result(result, self.sink, self.store, explain=self.explain)
        self.totals.add(writing_s=time.perf_counter() - t0, video_s=result.duration_s or 0.0)
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        if result.error:
            self.progress.write(f"error: {result.error}")
        # one line per media checkpointed: a log to follow (and to kill a test scan at)
        self.progress.write(f"done {result.media}: {len(result.placements)} placements")
        self.progress.media_done(result.duration_s or 0.0)
