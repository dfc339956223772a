"""Real file-system faults for tests: a small tmpfs that can be filled until the kernel says
ENOSPC, and a read-only bind mount of a directory. Both need root (mount(2)); without it the
tests that use them skip and say why, because a fake (a patched ``open``) would not prove what
SQLite does when the kernel refuses a write."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs or a read-only bind (the faults are real ones)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} failed here: {done.stderr.strip()}")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], check=True, capture_output=True)


@contextmanager
def tmpfs(target: Path, size: str = "8m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``target`` (created), unmounted afterwards."""
    target.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target))
    try:
        yield target
    finally:
        _umount(target)


@contextmanager
def readonly_view(source: Path, target: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``target``: a bind mount remounted ro (the kernel refuses
    every write with EROFS, root included, unlike permissions)."""
    target.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(source), str(target))
    try:
        done = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot remount {target} read-only: {done.stderr.strip()}")
        yield target
    finally:
        _umount(target)


def fill(directory: Path) -> Path:
    """Write a filler file in ``directory`` until the disk is full (ENOSPC); returns it, so
    that deleting it frees the space again."""
    filler = directory / "filler.bin"
    chunk = b"\xff" * (64 << 10)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != 28:  # ENOSPC
                raise
    # the last partial chunk: fill the remaining bytes one small write at a time
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\xff" * 512)
        except OSError as e:
            if e.errno != 28:
                raise
    return filler
