"""``onscreen scan --manifest FILE``: the media of a scan listed with their ids and metadata.

Two formats, told by the extension:

- JSONL (``.jsonl``, ``.ndjson``, ``.json``): one object a line,
  ``{"media_id": "ep-001", "path": "videos/ep1.mp4", "show": "Cooking", "season": 2}``.
- CSV (``.csv``): a header naming at least ``media_id`` and ``path``, then one row per media.

Every other key/column is the media's metadata, carried to the outputs (each JSONL placement
line gets ``"metadata": {...}``, the Parquet table a ``metadata_json`` column; the placement
store keeps placements only). ``path`` is relative to the manifest's directory (absolute paths
are kept). Blank lines are skipped.

What is refused, and how (decided so that one bad row never costs a night's scan, and a
mistake that would make results ambiguous never runs):

- A manifest that cannot be read (missing, not UTF-8, unknown extension, a CSV header without
  ``media_id``/``path``) and duplicate ``media_id`` values (two media would overwrite each
  other's placements): InvalidArgument, exit 2, before any model loads.
- A bad line (not JSON, not an object, ``media_id`` or ``path`` missing, empty or not text, an
  id over the length limit): a :class:`ManifestProblem` ``FILE:LINE: message``, printed before
  the scan starts and written as that media's ``{"media", "error"}`` line (its ``media_id`` if it
  has a usable one, else ``FILE:LINE``); the other lines are scanned.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision.errors import InvalidArgument
from vision.limits import MAX_MEDIA_ID_CHARS

__all__ = ["MANIFEST_SUFFIXES", "ManifestEntry", "ManifestProblem", "read_manifest"]

MANIFEST_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
"""Manifest formats by file extension."""


@dataclass(frozen=True)
class ManifestEntry:
    """One media of a manifest: its id, its file (resolved against the manifest's directory),
    its metadata (every other key), and where it was listed (``FILE:LINE``)."""

    media: str
    path: Path
    metadata: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True)
class ManifestProblem:
    """A manifest line that cannot be scanned: ``media`` is its id (or ``FILE:LINE``)."""

    media: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _rows(path: Path, text: str) -> list[tuple[int, Any]]:
    if MANIFEST_SUFFIXES[path.suffix.lower()] == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [c for c in ("media_id", "path") if c not in header]
        if missing:
            raise InvalidArgument(
                f"{path}:1: the CSV header must name the columns media_id and path "
                f"(missing: {', '.join(missing)}; got: {', '.join(header) or 'nothing'})"
            )
        rows: list[tuple[int, Any]] = []
        for row in reader:
            if any(v for v in row.values() if isinstance(v, str) and v.strip()):
                rows.append((reader.line_num, row))
        return rows
    out: list[tuple[int, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            out.append((n, exc))
    return out


def read_manifest(path: Path) -> tuple[list[ManifestEntry], list[ManifestProblem]]:
    """The entries of a manifest and its bad lines (module doc); InvalidArgument for a
    manifest that cannot be used at all or that lists a media id twice."""
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise InvalidArgument(
            f"{path}: a manifest must be .jsonl (or .ndjson, .json) or .csv, got "
            f"{path.suffix or 'no extension'!r}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such manifest") from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{path}: the manifest is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read the manifest ({exc.strerror})") from None
    base = path.parent
    entries: list[ManifestEntry] = []
    problems: list[ManifestProblem] = []
    first_line: dict[str, int] = {}
    dupes: list[str] = []
    for n, row in _rows(path, text):
        where = f"{path}:{n}"
        fallback = f"{path.name}:{n}"
        if isinstance(row, json.JSONDecodeError):
            problems.append(ManifestProblem(fallback, where, f"not JSON ({row.msg})"))
            continue
        if not isinstance(row, dict):
            what = type(row).__name__
            problems.append(ManifestProblem(fallback, where, f"expected an object, got {what}"))
            continue
        media, file = row.get("media_id"), row.get("path")
        usable = isinstance(media, str) and media.strip() and len(media) <= MAX_MEDIA_ID_CHARS
        if isinstance(media, str) and len(media) > MAX_MEDIA_ID_CHARS:
            message = f"media_id is over the {MAX_MEDIA_ID_CHARS}-character limit"
        elif not usable:
            message = f"media_id must be a non-empty string, got {media!r}"
        elif not isinstance(file, str) or not file.strip():
            message = f"path must be a non-empty string, got {file!r}"
        else:
            message = ""
        if usable:
            assert isinstance(media, str)
            if media in first_line:
                dupes.append(f"{where}: media_id {media!r} is already on line {first_line[media]}")
                continue
            first_line[media] = n
        if message:
            problems.append(ManifestProblem(media if usable else fallback, where, message))  # type: ignore[arg-type]
            continue
        assert isinstance(media, str) and isinstance(file, str)
        metadata = {k: v for k, v in row.items() if k not in ("media_id", "path")}
        entries.append(ManifestEntry(media, base / file, metadata, where))
    if dupes:
        more = f" (and {len(dupes) - 3} more)" if len(dupes) > 3 else ""
        raise InvalidArgument("; ".join(dupes[:3]) + more + ": each media needs its own id")
    return entries, problems
