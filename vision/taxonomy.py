"""The IAB Tech Lab Content Taxonomy 3.1: the default vocabulary of content categories.

Ad servers already speak these ids (OpenRTB ``content.cat`` with ``cattax`` 7 for 3.1), so a
keyframe labelled with them plugs into an existing stack without a mapping table. The data file
ships in ``vision/data`` under CC BY 3.0 (attribution: IAB Tech Lab; see ``IAB-SOURCE.md``).

This module is pure data: no model is touched here. Prompt wording for CLIP lives with the
category so the text that was embedded can be shown next to a score.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

IAB_TSV = "iab-content-taxonomy-3.1.tsv"
IAB_CATTAX = 7
"""AdCOM ``cattax`` value for Content Taxonomy 3.1."""


@dataclass(frozen=True)
class IabCategory:
    """One category: ``id`` as in the taxonomy (a string, e.g. ``"1"``, ``"150"``, ``"v9i3On"``).

    ``path`` is the tier names from the root, e.g. ``("Automotive", "Auto Type", "Budget Cars")``;
    ``sensitive`` marks the taxonomy's SCD (sensitive category data) extension rows.
    """

    id: str
    parent: str | None
    name: str
    path: tuple[str, ...]
    sensitive: bool = False

    @property
    def tier(self) -> int:
        return len(self.path)

    @property
    def prompts(self) -> tuple[str, ...]:
        """CLIP prompts for this category: its name in context of its top tier.

        Several wordings are averaged by the embedder; the tier-1 name disambiguates short
        names ("Drama" under Genres vs Books and Literature).
        """
        name = self.name.lower()
        if self.tier > 1:
            top = self.path[0].lower()
            return (f"a photo of {name}", f"a video frame about {name}, {top}")
        return (f"a photo about {name}", f"a video frame about {name}")


@cache
def iab_categories() -> tuple[IabCategory, ...]:
    """All categories in file order (parents before children)."""
    text = resources.files("vision.data").joinpath(IAB_TSV).read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    out: list[IabCategory] = []
    for row in rows[2:]:  # two header lines
        if not row or not row[0].strip():
            continue
        row = row + [""] * (8 - len(row))
        uid, parent, name = row[0].strip(), row[1].strip() or None, row[2].strip()
        path = tuple(t.strip() for t in row[3:7] if t.strip())
        out.append(
            IabCategory(uid, parent, name, path or (name,), sensitive=row[7].strip() == "SCD")
        )
    return tuple(out)


@cache
def iab_by_id() -> dict[str, IabCategory]:
    """Categories keyed by id, for validating ``iab: [...]`` targets."""
    return {c.id: c for c in iab_categories()}
