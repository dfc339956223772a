"""Query results and near-duplicate removal.

Near-duplicates (the same product photo re-encoded, resized, lightly cropped, or listed by two
sellers) crowd a result page with one thing. Walking the results best first, a result whose
cosine to an already kept result is above the threshold collapses into that kept result: it
disappears from the list and its id is recorded in the kept hit's ``duplicates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vision.catalog.items import CatalogItem
from vision.types import Box


@dataclass(frozen=True)
class SearchHit:
    """One similar item: the item, its cosine similarity to the query (-1..1, higher is more
    alike), and the ids of lower-ranked near-duplicates folded into it."""

    item: CatalogItem
    score: float
    duplicates: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        """The ``onscreen catalog query --json`` shape: ``id``, ``score``, then metadata."""
        out: dict[str, object] = {"id": self.item.id, "score": round(self.score, 6)}
        out.update({k: v for k, v in self.item.to_json().items() if k != "id"})
        if self.duplicates:
            out["duplicates"] = list(self.duplicates)
        return out


@dataclass(frozen=True)
class RegionHits:
    """Shop-the-look results for one region of a query image.

    ``box``: normalized xyxy of the region. ``source``: where the region came from
    (``"detector"``, ``"saliency"``, ``"grid"`` or ``"image"`` for the whole picture).
    ``label``: the detector's label when there is one.
    """

    box: Box
    source: str
    hits: tuple[SearchHit, ...]
    label: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "box": [round(v, 4) for v in self.box],
            "source": self.source,
            "items": [h.to_json() for h in self.hits],
        }
        if self.label:
            out["label"] = self.label
        return out


def collapse_near_duplicates(
    order: np.ndarray, vectors: np.ndarray, threshold: float, keep: int
) -> list[tuple[int, list[int]]]:
    """Greedy near-duplicate collapse over results already sorted best first.

    ``order``: candidate positions (0..N-1) best first; ``vectors``: (N, D) unit vectors of the
    candidates. Returns up to ``keep`` ``(kept position, [collapsed positions])`` pairs: each
    candidate joins the first kept one it is more similar to than ``threshold``, else is kept.
    """
    kept: list[tuple[int, list[int]]] = []
    kept_vecs: list[np.ndarray] = []
    for pos in order:
        v = vectors[pos]
        if kept_vecs:
            sims = np.stack(kept_vecs) @ v
            j = int(np.argmax(sims > threshold)) if np.any(sims > threshold) else -1
            if j >= 0:
                kept[j][1].append(int(pos))
                continue
        if len(kept) == keep:
            # already full: remaining candidates can only be collapsed, not kept
            continue
        kept.append((int(pos), []))
        kept_vecs.append(v)
    return kept
