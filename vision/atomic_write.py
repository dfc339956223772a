"""One way to replace a file so that a reader, a crash or a power cut never sees half of it.

Why: a file written in place is torn by a crash mid-write, and a rename alone is not durable
(the new name can vanish with a power cut, or point at data never flushed). The recipe:

1. write to a temporary file *in the same directory* (``os.replace`` is atomic only within one
   file system), named ``.<name>.<random>.tmp`` so a glob for ``*.parquet`` never picks it up;
2. flush and ``fsync`` it, so its bytes are on disk before the name points at them;
3. ``os.replace`` it over the target (atomic: readers see the old file or the new one);
4. ``fsync`` the directory, so the rename itself survives a power cut.

On any error (including KeyboardInterrupt) the temporary file is removed and the target is left
as it was. Every writer of whole files in onscreen (Parquet output, weights, vocabulary caches)
goes through :func:`atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform or file system that cannot open directories: best effort
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the data itself is synced
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | Callable[[BinaryIO], object],
    *,
    mode: int | None = None,
) -> Path:
    """Replace ``path`` with ``data`` (bytes, or a callback that writes to the open binary
    file), durably and atomically; returns the path.

    The callback may write in pieces (``pq.write_table(table, f)``, a streamed download); it
    must not close the file. ``mode`` sets the permission bits of the new file (default: what
    ``umask`` gives a new file, not ``mkstemp``'s 0600). The parent directory must exist.
    """
    target = Path(path)
    directory = target.parent
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return target
