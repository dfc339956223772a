"""The one atomic, durable file writer: bytes or a callback, fsync of file and directory,
old content kept and no temporary left behind on any error."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pytest

from vision.atomic_write import atomic_write


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What os.fsync was called on (the real fsync still runs): a file path or a directory."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def _leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello\n" * 1000, lambda f: [f.write(b"part1 "), f.write(b"part2")]],
    ids=["empty", "bytes", "callback"],
)
def test_writes_replaces_and_syncs_file_then_directory(
    tmp_path: Path, fsynced: list[str], data
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    assert atomic_write(target, data) == target
    expected = b"part1 part2" if callable(data) else data
    assert target.read_bytes() == expected
    assert _leftovers(tmp_path, "out.bin") == []
    # the temporary file (same directory, since deleted by the rename) then the directory
    assert len(fsynced) == 2
    assert fsynced[0].startswith(str(tmp_path / ".out.bin.")) and fsynced[0].endswith(".tmp")
    assert fsynced[1] == str(tmp_path)


def test_new_file_gets_umask_permissions_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a", b"x")
        atomic_write(tmp_path / "b", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600


class Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [Boom("disk full"), KeyboardInterrupt()])
def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, exc) -> None:
    target = tmp_path / "t.parquet"
    target.write_bytes(b"old content")

    def write(f: BinaryIO) -> None:
        f.write(b"half of the new")
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(target, write)
    assert target.read_bytes() == b"old content"
    assert _leftovers(tmp_path, "t.parquet") == []


def test_missing_directory_is_an_error_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "such" / "f", b"x")
    assert not (tmp_path / "no").exists()


def test_target_that_is_a_directory_is_refused_and_kept(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "d", b"x")
    assert (tmp_path / "d").is_dir() and _leftovers(tmp_path, "d") == []
