"""Snapshots: the catalog's files, written atomically and checked against a manifest on load.

On-disk layout of a catalog directory::

    MANIFEST.json          the only file a reader trusts first; replaced atomically
    index-000007.faiss     FAISS index of generation 7 (serialized IndexIDMap2)
    items-000007.jsonl     one live item a line: {"iid": 12, "id": "sku-1", ...metadata}
    wal-000007.log         changes acknowledged after generation 7 was written (see wal.py)
    LOCK                   held (flock) by the one process that writes the directory

A snapshot writes the new generation's files (each: temp file, fsync, ``os.replace``, fsync
of the directory), then the manifest the same way; only then are the previous generation's
files removed. A crash at any point leaves either the old manifest with its files and log, or
the new one with its own: never a mix. The manifest records the format version, the model
space id and dimension, counts and every file's byte size and sha256; a file that does not
match is a ``CatalogError`` on load, never a silently different index.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision.catalog.wal import fsync_dir
from vision.errors import CatalogError

FORMAT = "onscreen-catalog"
FORMAT_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that after a crash it is either the old file or all new."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CatalogError(f"cannot write {path}: {e}") from e


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds and how to check it (``MANIFEST.json``)."""

    space_id: str
    dim: int
    generation: int
    kind: str
    config: dict[str, Any]
    items: int
    stored: int
    next_iid: int
    files: tuple[FileEntry, ...]
    wal: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "space_id": self.space_id,
            "dim": self.dim,
            "generation": self.generation,
            "kind": self.kind,
            "config": self.config,
            "counts": {"items": self.items, "stored": self.stored},
            "next_iid": self.next_iid,
            "files": {f.name: {"bytes": f.bytes, "sha256": f.sha256} for f in self.files},
            "wal": self.wal,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Manifest:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise CatalogError(f"{where} is not an onscreen catalog manifest")
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise CatalogError(
                f"{where} has format version {version!r}; this onscreen reads version "
                f"{FORMAT_VERSION} (rebuild the catalog with this version)"
            )
        try:
            files = tuple(
                FileEntry(name=str(n), bytes=int(e["bytes"]), sha256=str(e["sha256"]))
                for n, e in obj["files"].items()
            )
            return cls(
                space_id=str(obj["space_id"]),
                dim=int(obj["dim"]),
                generation=int(obj["generation"]),
                kind=str(obj["kind"]),
                config=dict(obj["config"]),
                items=int(obj["counts"]["items"]),
                stored=int(obj["counts"]["stored"]),
                next_iid=int(obj["next_iid"]),
                files=files,
                wal=str(obj["wal"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CatalogError(f"{where} is malformed: {e!r}") from e

    def file(self, prefix: str) -> FileEntry | None:
        return next((f for f in self.files if f.name.startswith(prefix)), None)


def read_manifest(directory: Path) -> Manifest | None:
    """The directory's manifest, or ``None`` when there is none (not a catalog yet)."""
    path = directory / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CatalogError(f"cannot read {path}: {e}") from e
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CatalogError(f"{path} is not valid JSON (torn or damaged): {e}") from e
    return Manifest.from_json(obj, str(path))


def write_manifest(directory: Path, manifest: Manifest) -> None:
    data = json.dumps(manifest.to_json(), indent=1, sort_keys=True).encode()
    write_durably(directory / MANIFEST_NAME, data)


def read_checked(directory: Path, entry: FileEntry) -> bytes:
    """A snapshot file's bytes, after checking its size and sha256 against the manifest."""
    path = directory / entry.name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CatalogError(f"snapshot file {path} named by the manifest cannot be read: {e}") from e
    if len(data) != entry.bytes:
        raise CatalogError(
            f"snapshot file {path} is {len(data)} bytes, the manifest says {entry.bytes} "
            "(torn or replaced; restore the directory or rebuild the catalog)"
        )
    digest = sha256_hex(data)
    if digest != entry.sha256:
        raise CatalogError(
            f"snapshot file {path} fails its sha256 (manifest {entry.sha256[:12]}..., file "
            f"{digest[:12]}...): damaged; restore the directory or rebuild the catalog"
        )
    return data
