"""Argument types that check a command-line value when it is parsed, before any work.

Each is an ``argparse`` ``type=``: a bad value raises ``argparse.ArgumentTypeError`` and the
command stops with exit code 2 and one line, ``onscreen scan: error: argument --interval: ...``,
before a model loads or a file is read (a bad ``--parquet`` found after a night's scan is too
late). Numbers must be finite: ``nan`` and ``inf`` parse as floats but are no interval.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

__all__ = [
    "existing_dir",
    "output_file",
    "nonnegative_seconds",
    "positive_int",
    "positive_seconds",
    "port",
]


def _seconds(text: str, *, zero_ok: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
        bound = ">= 0" if zero_ok else "> 0"
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds {bound}, got {text!r}"
        )
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (``--interval``)."""
    return _seconds(text, zero_ok=False)


def nonnegative_seconds(text: str) -> float:
    """A finite number of seconds >= 0 (``--ocr-interval``: 0 reads every keyframe)."""
    return _seconds(text, zero_ok=True)


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--batch-size``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port in 0..65535, got {text!r}")
    return value


def existing_dir(text: str) -> Path:
    """A directory that exists (``--media-root``, ``--rules``)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a directory")
    return path


def output_file(text: str) -> Path:
    """A file the command may create or replace: not a directory, and in a directory that
    exists and is writable, or can be created (missing parents are created, as ``mkdir -p``)."""
    path = Path(text)
    if not text or text.endswith(("/", os.sep)) or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: not writable")
    parent = path.absolute().parent
    while not parent.exists():  # the nearest ancestor that exists decides
        parent = parent.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {parent} is not a directory")
    try:  # os.access says yes to root on a read-only file system: try for real
        with tempfile.TemporaryFile(dir=parent, prefix=".onscreen-probe-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise argparse.ArgumentTypeError(
            f"{text}: cannot create a file in {parent}: {reason}"
        ) from None
    return path
