"""Is a model file present and verified? The sha256 check, cached in a sidecar, and ``resolve``
(start-up: a verified path or a WeightsError naming the fix; never a download)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from vision.atomic_write import atomic_write
from vision.errors import WeightsError
from vision.weights.manifest import (
    CHUNK_BYTES,
    FILE_MODE,
    SIDECAR_VERSION,
    Manifest,
    WeightSpec,
    _fetch_command,
    weights_dir,
)


@dataclass(frozen=True)
class WeightStatus:
    """Whether a model's file is in the weights directory and matches its sha256."""

    name: str
    path: Path
    present: bool
    verified: bool


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in ``CHUNK_BYTES`` blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def _write_sidecar(path: Path, sha: str) -> None:
    st = path.stat()
    record = {"v": SIDECAR_VERSION, "sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    with contextlib.suppress(OSError):  # a read-only weights dir: verification is not cached
        atomic_write(_sidecar(path), json.dumps(record).encode(), mode=FILE_MODE)


def _sidecar_says(path: Path, sha: str) -> bool:
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("v") == SIDECAR_VERSION
        and record.get("sha256") == sha
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


def status(
    spec: WeightSpec, dest_dir: Path | None = None, *, trust_sidecar: bool = True
) -> WeightStatus:
    """Is ``spec``'s file present in ``dest_dir`` (default ``weights_dir()``), and verified?

    With ``trust_sidecar`` (listings) the sidecar answers when the file's size and mtime still
    match it; otherwise the file is hashed and the result recorded. An entry without a sha256
    is never "verified".
    """
    path = (dest_dir or weights_dir()) / spec.file
    if not path.is_file():
        return WeightStatus(spec.name, path, present=False, verified=False)
    if not spec.sha256:
        return WeightStatus(spec.name, path, present=True, verified=False)
    if trust_sidecar and _sidecar_says(path, spec.sha256):
        return WeightStatus(spec.name, path, present=True, verified=True)
    ok = sha256_file(path) == spec.sha256
    if ok:
        _write_sidecar(path, spec.sha256)
    return WeightStatus(spec.name, path, present=True, verified=ok)


def resolve(name: str, *, manifest: Manifest | None = None, dest_dir: Path | None = None) -> Path:
    """The verified local file of model ``name``. Never downloads.

    Raises WeightsError naming the command that fixes it: the file is missing, or fails its
    sha256 (``onscreen weights fetch <name>`` replaces it), or the name is unknown.

    Always hashes the whole file (~0.3 s per 100 MB): a model is loaded only from bytes that
    match the manifest *now*. The sidecar's size+mtime shortcut would pass a file corrupted in
    place (a bit flip on disk keeps both), so it serves listings only.
    """
    manifest = manifest or Manifest.load()
    spec = manifest.get(name)
    st = status(spec, dest_dir or manifest.weights_dir, trust_sidecar=False)
    if not st.present:
        raise WeightsError(
            f"weights {name!r} not found at {st.path}: run `{_fetch_command(name)}` "
            f"(source {spec.source})"
        )
    if not st.verified:
        why = "has no sha256 in the manifest" if not spec.sha256 else "does not match its sha256"
        raise WeightsError(
            f"weights {name!r} at {st.path} {why}: run `{_fetch_command(name)}` to replace it"
        )
    return st.path
