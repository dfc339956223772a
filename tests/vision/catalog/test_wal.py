"""The write-ahead log: torn tails are dropped (never acknowledged), damage before the tail is
an error, and appends after a torn tail start on a frame boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from vision.catalog.wal import HEADER_BYTES, WriteAheadLog, frame, read_log
from vision.errors import CatalogError

RECORDS = [b"first record", b"", b"x" * 1000]


def _write(path: Path, records: list[bytes]) -> None:
    log = WriteAheadLog(path, 0)
    for r in records:
        log.append(r)
    log.close()


def test_records_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    _write(path, RECORDS)
    replay = read_log(path)
    assert replay.records == tuple(RECORDS)
    assert replay.torn_tail_bytes == 0 and replay.good_bytes == path.stat().st_size


def test_missing_log_is_empty(tmp_path: Path) -> None:
    assert read_log(tmp_path / "none.log").records == ()


def test_a_tail_cut_at_every_byte_drops_only_the_last_record(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    _write(path, RECORDS)
    whole = path.read_bytes()
    last = len(frame(RECORDS[-1]))
    for cut in range(1, last):
        path.write_bytes(whole[: len(whole) - cut])
        replay = read_log(path)
        assert replay.records == tuple(RECORDS[:-1]), cut
        assert replay.torn_tail_bytes == last - cut


def test_a_last_record_with_a_bad_checksum_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    _write(path, RECORDS)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert read_log(path).records == tuple(RECORDS[:-1])


def test_a_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    _write(path, RECORDS)
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    assert read_log(path).records == tuple(RECORDS)


@pytest.mark.parametrize(
    "flip_at, message",
    [
        (HEADER_BYTES + 3, "record checksum mismatch with more records after it"),
        (5, "bad record header"),
        (0, "bad record header"),
    ],
)
def test_damage_before_the_tail_is_an_error(tmp_path: Path, flip_at: int, message: str) -> None:
    path = tmp_path / "wal.log"
    _write(path, RECORDS)
    data = bytearray(path.read_bytes())
    data[flip_at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogError, match=f"wal.log is corrupt at byte 0: {message}"):
        read_log(path)


def test_reopening_truncates_a_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    _write(path, RECORDS)
    with open(path, "ab") as f:
        f.write(frame(b"never acknowledged")[:-3])
    replay = read_log(path)
    log = WriteAheadLog(path, replay.good_bytes)
    log.append(b"after the crash")
    log.close()
    assert read_log(path).records == (*RECORDS, b"after the crash")
