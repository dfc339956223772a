"""The crash-safe JSONL sink of a batch scan and its ``.progress`` checkpoint.

A media's lines are appended and fsynced together, then a checkpoint line ``{"media",
"offset"}`` goes to ``<out>.progress`` (fsynced too). ``resume=True`` truncates the output to
the last checkpointed offset (dropping a half-written media) and skips media already done, so
a scan killed at any instant restarts without losing or duplicating a line.

The checkpoint is the *last* thing written for a media: whatever else a media must reach (the
placement store) is written before :meth:`JsonlSink.write`, so a media that is checkpointed is
complete everywhere, and one that is not is redone by ``--resume``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PROGRESS_SUFFIX", "JsonlSink"]

PROGRESS_SUFFIX = ".progress"
"""The checkpoint file sits beside the output: ``<out>.progress``."""


@dataclass
class JsonlSink:
    """Appends each media's lines atomically-enough (one write + fsync) with a checkpoint."""

    path: Path
    resume: bool = False
    done: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.progress = self.path.with_name(self.path.name + PROGRESS_SUFFIX)
        offset = 0
        if self.resume and self.progress.exists():
            for line in self.progress.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last checkpoint line: everything before it stands
                self.done.add(rec["media"])
                offset = int(rec["offset"])
        if not self.resume:
            self.progress.unlink(missing_ok=True)
        self._out = open(self.path, "ab" if self.resume else "wb")  # noqa: SIM115
        if self.resume:
            self._out.truncate(offset)
            self._out.seek(offset)
        self._progress = open(self.progress, "a")  # noqa: SIM115

    def write(self, media: str, lines: Sequence[str]) -> None:
        """Append ``media``'s lines, then checkpoint it as done (both fsynced, in that order)."""
        data = "".join(line + "\n" for line in lines).encode()
        self._out.write(data)
        self._out.flush()
        os.fsync(self._out.fileno())
        self._progress.write(json.dumps({"media": media, "offset": self._out.tell()}) + "\n")
        self._progress.flush()
        os.fsync(self._progress.fileno())
        self.done.add(media)

    def close(self) -> None:
        self._out.close()
        self._progress.close()
