"""A write-ahead log: every catalog change is a framed record, fsynced before it is acknowledged.

Frame (little-endian)::

    b"OSWL" | u32 payload length | u32 crc32(payload) | u32 crc32(the 12 bytes before) | payload

The header has its own checksum so that a damaged *length* is recognised as damage, not taken
as "the rest of the file is a record being written". On replay:

- a frame cut short at the end of the file (header or payload incomplete), a last frame whose
  payload checksum fails, or a zero-filled tail is a **torn tail**: the writer died inside
  ``append`` before its fsync returned, so the change was never acknowledged; it is dropped and
  the file truncated to the last whole frame so new records do not follow garbage;
- anything else that fails a check (a bad header, or a bad payload with more frames after it)
  is **corruption** of acknowledged data: a ``CatalogError`` naming the file and offset, never a
  silently shorter history.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from vision.catalog.limits import MAX_WAL_RECORD_BYTES
from vision.errors import CatalogError

MAGIC = b"OSWL"
_HEADER = struct.Struct("<4sIII")
HEADER_BYTES = _HEADER.size


def frame(payload: bytes) -> bytes:
    """The bytes of one record: header + payload."""
    if len(payload) > MAX_WAL_RECORD_BYTES:
        raise CatalogError(
            f"write-ahead-log record of {len(payload)} bytes is over the {MAX_WAL_RECORD_BYTES} "
            "byte limit; upsert in smaller batches"
        )
    head = struct.pack("<4sII", MAGIC, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


@dataclass(frozen=True)
class Replay:
    """What a log file holds: its whole records, where they end, and whether a tail was torn."""

    records: tuple[bytes, ...]
    good_bytes: int
    """Offset just past the last whole record (the file's length when nothing was torn)."""
    torn_tail_bytes: int
    """Bytes after ``good_bytes`` dropped as a torn tail (0 when the file ended cleanly)."""


def read_log(path: Path) -> Replay:
    """Read every whole record of ``path`` (a missing file is an empty log)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return Replay(records=(), good_bytes=0, torn_tail_bytes=0)
    except OSError as e:
        raise CatalogError(f"cannot read write-ahead log {path}: {e}") from e
    records: list[bytes] = []
    pos = 0
    size = len(data)
    while pos < size:
        rest = data[pos:]
        if len(rest) < HEADER_BYTES or not rest.strip(b"\0"):
            break  # torn: a partial header, or a zero-filled tail
        magic, length, crc, head_crc = _HEADER.unpack_from(data, pos)
        if magic != MAGIC or zlib.crc32(data[pos : pos + 12]) != head_crc:
            raise CatalogError(
                f"write-ahead log {path} is corrupt at byte {pos}: bad record header "
                "(acknowledged changes after it cannot be trusted; restore the directory)"
            )
        end = pos + HEADER_BYTES + length
        if end > size:
            break  # torn: the payload was being written
        payload = data[pos + HEADER_BYTES : end]
        if zlib.crc32(payload) != crc:
            if end == size:
                break  # torn: the last record's payload did not fully reach the disk
            raise CatalogError(
                f"write-ahead log {path} is corrupt at byte {pos}: record checksum mismatch "
                "with more records after it (restore the directory)"
            )
        records.append(payload)
        pos = end
    return Replay(records=tuple(records), good_bytes=pos, torn_tail_bytes=size - pos)


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a file created, renamed or removed in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """An append-only log open for writing; ``append`` returns only once the record is durable.

    Opening truncates a torn tail found by ``read_log`` (pass its ``good_bytes``), so the next
    record starts on a frame boundary. One process writes a log at a time (the catalog holds an
    exclusive lock on its directory).
    """

    def __init__(self, path: Path, good_bytes: int) -> None:
        self.path = Path(path)
        existed = self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = good_bytes
        try:
            if os.fstat(self._fd).st_size != good_bytes:
                os.ftruncate(self._fd, good_bytes)
                os.fsync(self._fd)
            if not existed:
                fsync_dir(self.path.parent)
        except OSError as e:
            os.close(self._fd)
            raise CatalogError(f"cannot open write-ahead log {path}: {e}") from e

    def append(self, payload: bytes) -> None:
        """Write one record and fsync it; when this returns the record survives a crash.

        A failed write (disk full) is cut back off the file, so the log stays whole frames.
        """
        framed = frame(payload)
        data = memoryview(framed)
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
            os.fsync(self._fd)
        except OSError as e:
            with contextlib.suppress(OSError):  # else the torn tail is dropped on the next open
                os.ftruncate(self._fd, self._size)
            raise CatalogError(f"cannot write to write-ahead log {self.path}: {e}") from e
        self._size += len(framed)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
