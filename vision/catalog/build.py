"""Build or update a catalog directory from a catalog JSONL: the engine of ``onscreen catalog
build``.

- **Per-line problems**: a bad JSONL line or an image that cannot be decoded is reported as
  ``line N: ...`` and skipped; every other item is indexed.
- **Resumable**: items are upserted in batches, each durable when acknowledged, so a build that
  was killed continues where it stopped: an item already in the catalog with the same metadata
  (same image path, title, price, ...) is skipped without decoding or embedding its image.
- Ends with a snapshot, so the next open loads one checked file set instead of replaying the
  whole log (and picks HNSW when the catalog is large).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.catalog.items import CatalogItem, read_catalog_file
from vision.catalog.store import Catalog, VisualModel
from vision.errors import MediaError
from vision.image_decode import read_image_file

DEFAULT_BUILD_BATCH = 32
"""Images decoded and embedded per batch (one model call, one durable upsert)."""


@dataclass(frozen=True)
class BuildReport:
    """What a build did: items newly indexed or updated, items already up to date, problems."""

    indexed: int
    unchanged: int
    problems: tuple[str, ...]
    """``"line N: message"`` for bad JSONL lines and images that could not be read, file order."""


Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each batch (items, bad lines excluded)."""


def build_catalog(
    catalog_file: Path,
    out_dir: Path,
    model: VisualModel,
    *,
    batch_size: int = DEFAULT_BUILD_BATCH,
    progress: Progress | None = None,
) -> BuildReport:
    """Index ``catalog_file`` into ``out_dir`` (created when missing) with ``model``'s features.

    The directory must have been built with the same model (``CatalogError`` otherwise).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    parsed = read_catalog_file(catalog_file)
    problems = list(parsed.problems)
    line_of = _line_numbers(catalog_file, parsed.items)
    with Catalog.for_model(out_dir, model, create=True) as cat:
        todo = [it for it in parsed.items if cat.get(it.id) != it]
        unchanged = len(parsed.items) - len(todo)
        indexed = 0
        done = unchanged
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            ok: list[CatalogItem] = []
            pixels: list[np.ndarray] = []
            for item in batch:
                try:
                    pixels.append(read_image_file(item.image))
                    ok.append(item)
                except MediaError as e:
                    problems.append(f"line {line_of.get(item.id, '?')}: image {e}")
            if ok:
                cat.upsert(ok, model.visual_features(pixels))
                indexed += len(ok)
            done += len(batch)
            if progress is not None:
                progress(done, len(parsed.items))
        cat.save()
    problems.sort(key=_line_key)
    return BuildReport(indexed=indexed, unchanged=unchanged, problems=tuple(problems))


def _line_numbers(catalog_file: Path, items: tuple[CatalogItem, ...]) -> dict[str, int]:
    """Each good item's line in the file (for reporting an unreadable image by line)."""
    import json

    wanted = {it.id for it in items}
    out: dict[str, int] = {}
    for n, line in enumerate(Path(catalog_file).read_text(encoding="utf-8").splitlines(), 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("id") in wanted and obj["id"] not in out:
            out[obj["id"]] = n
    return out


def _line_key(problem: str) -> int:
    head = problem.split(":", 1)[0].removeprefix("line ")
    return int(head) if head.isdigit() else 1 << 62
