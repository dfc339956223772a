"""What a batch scan tells the person running it while it runs, and what it did at the end.

On a terminal: one tqdm bar over the media to scan, with the keyframes analyzed, the realtime
factor (seconds of video scanned per second of wall time) and tqdm's ETA. Not on a terminal
(a log file, cron, CI): no carriage returns, a plain line every ``LOG_EVERY_S`` seconds. In
both, one ``done MEDIA: N placements`` line per media as it is checkpointed (a log to follow,
and what tests kill a scan at), and an ``error:`` line per media that failed.

:class:`StageTimes` is where the time went (decode / models / matching / writing), summed per
stage; the stages overlap in the pipelined scan, so they add up to more than the wall time.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

__all__ = ["LOG_EVERY_S", "ScanProgress", "StageTimes", "format_duration"]

LOG_EVERY_S = 10.0
"""How often a scan not on a terminal logs a progress line, seconds."""


def format_duration(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` / ``4.2 s``: short for a log line."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent per stage of a scan, and what it covered.

    ``decode_s``: waiting for keyframes from the decoders (summed over the decode workers);
    ``models_s``: model calls; ``matching_s``: placements from facts; ``writing_s``: the store,
    the JSONL lines and their checkpoint; ``wall_s``: the scan from start to end.
    ``video_s``: seconds of video scanned (an image counts 0); ``keyframes``: frames analyzed;
    ``batches``: model calls (``keyframes / batches`` is the mean batch).
    """

    decode_s: float = 0.0
    models_s: float = 0.0
    matching_s: float = 0.0
    writing_s: float = 0.0
    wall_s: float = 0.0
    video_s: float = 0.0
    keyframes: int = 0
    batches: int = 0

    @property
    def realtime(self) -> float:
        """Seconds of video per second of wall time (0 when nothing was timed)."""
        return self.video_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def mean_batch(self) -> float:
        return self.keyframes / self.batches if self.batches else 0.0

    def split(self) -> str:
        """``decode 12.0 s, models 40.1 s, matching 0.8 s, writing 0.2 s``."""
        parts = (
            ("decode", self.decode_s),
            ("models", self.models_s),
            ("matching", self.matching_s),
            ("writing", self.writing_s),
        )
        return ", ".join(f"{name} {format_duration(s)}" for name, s in parts)


class ScanProgress:
    """Progress of one scan (module doc); thread-safe: the model loop reports keyframes, the
    writer reports media."""

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        log_every_s: float = LOG_EVERY_S,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.started = time.monotonic()
        self.media = 0
        self.keyframes = 0
        self.video_s = 0.0
        self._lock = threading.Lock()
        self._every = log_every_s
        self._logged = self.started
        self._bar = None
        self._plain = enabled and not _is_tty(self.stream)
        if enabled and not self._plain:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="media", dynamic_ncols=True, file=self.stream)

    def write(self, line: str) -> None:
        """A line that must not tear the bar."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(line, file=self.stream)
            else:
                print(line, file=self.stream, flush=True)

    def add_keyframes(self, n: int) -> None:
        with self._lock:
            self.keyframes += n
            self._refresh()

    def media_done(self, video_s: float) -> None:
        with self._lock:
            self.media += 1
            self.video_s += video_s
            if self._bar is not None:
                self._bar.update(1)
            self._refresh()

    def _refresh(self) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        rate = f"{self.video_s / elapsed:.1f}x realtime" if elapsed > 0 and self.video_s else ""
        if self._bar is not None:
            self._bar.set_postfix_str(", ".join(x for x in (f"{self.keyframes} kf", rate) if x))
        elif self._plain and now - self._logged >= self._every:
            self._logged = now
            eta = ""
            if self.media:
                eta = f", ETA {format_duration(elapsed / self.media * (self.total - self.media))}"
            print(
                f"progress: {self.media}/{self.total} media, {self.keyframes} keyframes"
                f"{', ' + rate if rate else ''}, {format_duration(elapsed)} elapsed{eta}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
