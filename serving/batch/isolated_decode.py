"""Untrusted decoding in a worker process: a hostile file can neither stall nor kill the scan.

Decoding (PyAV/FFmpeg, OpenCV, Pillow) and keyframe selection of each media run in one worker
process (``multiprocessing``'s *spawn* context: a fresh interpreter, no forked model threads),
reused from media to media and started again when one dies. The parent receives the keyframes
as pickled uint8 arrays over a pipe (measured in BENCHMARKS.md: a few milliseconds per
keyframe, small next to the models), and rebuilds the very same :class:`Frame` objects, so the
placements are byte-identical to decoding in-process.

What the worker is held to, per media:

- **Time**: ``timeout_s`` plus the video's declared duration (capped at the duration limit) of
  waiting for the decoder, i.e. decoding must run at least as fast as real time once past the
  fixed allowance. Only the time the scan *waits* for a keyframe counts: while the models work
  the worker is blocked on a full pipe, which is not its fault. Past the budget the worker is
  killed and the media gets an error line.
- **Memory**: ``RLIMIT_AS`` set in the worker to its start-up size plus ``memory_mb``, so an
  allocation past it fails (MemoryError, or FFmpeg's ENOMEM) inside the worker and the media
  gets an error line, instead of the machine's OOM killer picking the scan.
- **Crashes**: a segfault, abort or ``os._exit`` ends the worker; the parent sees the pipe
  close, reports how the worker ended in the media's error line, and the next media starts a
  new worker.

The worker dies with its parent (``PR_SET_PDEATHSIG``), so a scan killed with SIGKILL leaves no
decoder behind, and exits when the parent closes the pipe.

Test hook (for tests only, read only in the worker): the environment variable
``ONSCREEN_DECODE_TEST_HOOK="NAME:ACTION,..."`` makes the worker misbehave when asked to decode
a file named ``NAME``: ``hang`` (sleeps), ``abort`` (``os.abort``, SIGABRT), ``exit``
(``os._exit(3)``) or ``oom`` (allocates 1 TiB). It changes nothing for any other file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from vision.errors import MediaError
from vision.keyframes import KeyframeConfig
from vision.limits import MAX_VIDEO_DURATION_S
from vision.types import Frame

__all__ = [
    "DEFAULT_DECODE_MEMORY_MB",
    "DEFAULT_DECODE_TIMEOUT_S",
    "DECODE_S_PER_VIDEO_S",
    "TEST_HOOK_ENV",
    "DecodeLimits",
    "DecodePool",
]

DEFAULT_DECODE_TIMEOUT_S = 120.0
"""Fixed decode allowance per media, seconds (``--decode-timeout``)."""
DECODE_S_PER_VIDEO_S = 1.0
"""Extra decode allowance per second of declared video: decoding must keep up with real time
(measured: a 640x360 H.264 video decodes and is sampled at ~20x real time on one core)."""
DEFAULT_DECODE_MEMORY_MB = 4096
"""Address space the worker may add to its start-up size, MiB (``--decode-memory-mb``): a 4K
frame is 25 MB as RGB and FFmpeg keeps a few per thread, so this leaves a wide margin."""
WORKER_START_TIMEOUT_S = 120.0
"""How long a new worker may take to start (import the decoders) before the media fails."""
TEST_HOOK_ENV = "ONSCREEN_DECODE_TEST_HOOK"
"""Test-only: ``NAME:ACTION,...`` (see the module doc)."""


@dataclass(frozen=True)
class DecodeLimits:
    """What the decode worker is held to per media (see the module doc)."""

    timeout_s: float = DEFAULT_DECODE_TIMEOUT_S
    memory_mb: int = DEFAULT_DECODE_MEMORY_MB

    def __post_init__(self) -> None:
        if not (0 < self.timeout_s < float("inf")):
            raise ValueError(f"timeout_s must be a finite number > 0, got {self.timeout_s!r}")
        if self.memory_mb < 1:
            raise ValueError(f"memory_mb must be >= 1, got {self.memory_mb!r}")


# --- the worker (runs in the child process) ------------------------------------------------------


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: SIGKILL us when the parent dies
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the worker
        pass


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _hooks() -> dict[str, str]:
    text = os.environ.get(TEST_HOOK_ENV, "")
    pairs = (item.rsplit(":", 1) for item in text.split(",") if ":" in item)
    return {name: action for name, action in pairs}


def _misbehave(action: str) -> None:
    if action == "hang":
        time.sleep(1e6)
    elif action == "abort":
        os.abort()
    elif action == "exit":
        os._exit(3)
    elif action == "oom":
        bytearray(1 << 40)


def _over_cap(path: Path) -> str:
    mb = os.environ.get("ONSCREEN_DECODE_MEMORY_MB", "?")
    return f"{path}: decoding needs more memory than the decoder's {mb} MB cap (--decode-memory-mb)"


def _decode_one(conn: Connection, path: Path, media: str, config: KeyframeConfig) -> None:
    from vision.media import is_video_file, load_frames
    from vision.video_decode import probe_video

    try:
        duration = probe_video(path).duration_s if is_video_file(path) else None
        conn.send(("info", duration))
        for f in load_frames(path, media, config=config):
            conn.send(("frame", f.t, f.index, f.reason, f.image))
    except MediaError as exc:
        conn.send(("error", str(exc)))
        return
    except MemoryError:
        conn.send(("error", _over_cap(path)))
        return
    except Exception as exc:  # noqa: BLE001 - a decoder bug is this media's error line
        conn.send(("error", f"{path}: decoder error {type(exc).__name__}: {exc}"))
        return
    conn.send(("done",))


def _worker_main(conn: Connection, memory_mb: int) -> None:
    """The worker's loop: one ``(path, media, config)`` request at a time until EOF."""
    _die_with_parent()
    import resource

    import vision.media  # noqa: F401 - the decoders load before the cap is set

    os.environ["ONSCREEN_DECODE_MEMORY_MB"] = str(memory_mb)  # for the error text
    limit = _vm_bytes() + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    hooks = _hooks()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is done (or gone)
        path_text, media, config = request
        path = Path(path_text)
        try:
            if path.name in hooks:
                _misbehave(hooks[path.name])
            _decode_one(conn, path, media, config)
        except MemoryError:
            conn.send(("error", _over_cap(path)))
        except (BrokenPipeError, EOFError, OSError):
            return


# --- the parent's side ---------------------------------------------------------------------------


def _how_it_ended(proc: BaseProcess) -> str:
    proc.join(timeout=5)
    code = proc.exitcode
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


class DecodePool:
    """One reusable decode worker; :meth:`keyframes` decodes a media in it (module doc).

    Not thread-safe: one media at a time (the batch scan's order). Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, limits: DecodeLimits | None = None) -> None:
        self.limits = limits or DecodeLimits()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._busy = False
        self.starts = 0
        """Workers started so far (one, plus one per worker that died or was stopped)."""
        self.duration_s: float | None = None
        """The declared duration of the media decoded last (None: an image, or unknown)."""

    def _start(self) -> tuple[BaseProcess, Connection]:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(child, self.limits.memory_mb),
            name="onscreen-decode",
            daemon=True,
        )
        proc.start()
        child.close()
        self.starts += 1
        try:
            if not parent.poll(WORKER_START_TIMEOUT_S):
                raise MediaError(
                    f"the decode worker did not start within {WORKER_START_TIMEOUT_S:.0f} s"
                )
            parent.recv()
        except (EOFError, OSError):
            raise MediaError(f"the decode worker {_how_it_ended(proc)} while starting") from None
        except MediaError:
            proc.kill()
            proc.join()
            raise
        self._proc, self._conn = proc, parent
        return proc, parent

    def _stop(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._busy = False
        if proc is not None:
            proc.kill()
            proc.join()
        if conn is not None:
            conn.close()

    def keyframes(self, path: Path, media: str, config: KeyframeConfig) -> Iterator[Frame]:
        """The keyframes of ``path`` under ``media``, decoded in the worker, lazily.

        Raises MediaError (while iterating) for what decoding in-process raises, and for a
        decode that ran out of time or memory or crashed the worker (then a new worker is used
        for the next media). The worker is (re)started here, in the calling thread, not in the
        thread that iterates: Linux ties the worker's death signal to the thread that started
        it, so that must be a thread that lives as long as the pool (the prefetch thread that
        consumes the keyframes ends with each media).
        """
        if self._busy:  # the previous media was abandoned mid-decode: its worker is mid-file
            self._stop()
        if self._proc is None or not self._proc.is_alive():
            self._stop()
            proc, conn = self._start()
        else:
            assert self._conn is not None
            proc, conn = self._proc, self._conn
        self._busy = True
        self.duration_s = None
        conn.send((str(path), media, config))
        return self._receive(proc, conn, path, media)

    def _receive(
        self, proc: BaseProcess, conn: Connection, path: Path, media: str
    ) -> Iterator[Frame]:
        from serving.media_scan import printable_name

        shown = printable_name(str(path))
        budget = self.limits.timeout_s
        waited = 0.0
        while True:
            start = time.monotonic()
            ready = conn.poll(max(0.0, budget - waited))
            waited += time.monotonic() - start
            if not ready:
                if self._proc is proc:
                    self._stop()
                raise MediaError(
                    f"{shown}: decoding took over {budget:.0f} s, the decode time limit: "
                    "stopped (a broken or hostile file?)"
                )
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                how = _how_it_ended(proc)
                if self._proc is proc:
                    self._stop()
                raise MediaError(f"{shown}: the decoder crashed on this file (it {how})") from None
            kind = msg[0]
            if kind == "frame":
                _, t, index, reason, image = msg
                yield Frame(media_id=media, t=t, image=image, index=index, reason=reason)
            elif kind == "info":
                self.duration_s = msg[1]
                if msg[1] is not None:
                    declared = min(max(float(msg[1]), 0.0), MAX_VIDEO_DURATION_S)
                    budget = self.limits.timeout_s + DECODE_S_PER_VIDEO_S * declared
            elif kind == "done":
                self._busy = False
                return
            else:  # "error": the worker is fine, the file is not
                self._busy = False
                raise MediaError(msg[1])

    def close(self) -> None:
        """Stop the worker (it is also stopped when this process exits)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()  # the worker's recv sees EOF and returns
        if proc is not None:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
