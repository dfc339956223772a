"""Metadata filters, turned into a boolean mask over the index's ids *before* the search.

The catalog keeps item metadata as columns indexed by id (category code, advertiser code,
price, tag membership), so a filter costs a few vectorized comparisons over ``n`` ids and then
travels into FAISS as an id selector: the search itself only walks allowed items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vision.catalog.items import CatalogItem


def _frozen(values: object, name: str) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = (values,)
    out = frozenset(values)  # type: ignore[call-overload]
    if not all(isinstance(v, str) for v in out):
        raise ValueError(f"{name} must be strings, got {sorted(map(repr, out))}")
    return out


@dataclass(frozen=True)
class CatalogFilter:
    """Which items a query may return; every given condition must hold (AND).

    ``categories`` / ``advertisers``: the item's value is one of these. ``min_price`` /
    ``max_price``: inclusive bounds (items without a price are excluded by either bound).
    ``tags``: the item carries *every* one of these attribute tags (``"colour:red"``).
    """

    categories: frozenset[str] | None = None
    advertisers: frozenset[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    tags: frozenset[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", _frozen(self.categories, "categories"))
        object.__setattr__(self, "advertisers", _frozen(self.advertisers, "advertisers"))
        object.__setattr__(self, "tags", _frozen(self.tags, "tags"))
        for name in ("min_price", "max_price"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v)
            ):
                raise ValueError(f"{name} must be a number, got {v!r}")
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")

    def is_empty(self) -> bool:
        return all(
            getattr(self, f) is None
            for f in ("categories", "advertisers", "min_price", "max_price", "tags")
        )

    def admits(self, item: CatalogItem) -> bool:
        """The same rule as the mask, for one item (used by tests and by small callers)."""
        if self.categories is not None and item.category not in self.categories:
            return False
        if self.advertisers is not None and item.advertiser not in self.advertisers:
            return False
        if self.min_price is not None and (item.price is None or item.price < self.min_price):
            return False
        if self.max_price is not None and (item.price is None or item.price > self.max_price):
            return False
        return self.tags is None or self.tags <= set(item.tags)


class MetadataColumns:
    """Item metadata as arrays indexed by id, for building filter masks quickly."""

    def __init__(self) -> None:
        self._codes: dict[str, dict[str, int]] = {"category": {}, "advertiser": {}}
        self._category = np.full(1024, -1, dtype=np.int32)
        self._advertiser = np.full(1024, -1, dtype=np.int32)
        self._price = np.full(1024, np.nan, dtype=np.float64)
        self._tags: dict[str, set[int]] = {}
        self._item_tags: dict[int, tuple[str, ...]] = {}

    def _grow(self, iid: int) -> None:
        size = len(self._price)
        if iid < size:
            return
        while size <= iid:
            size *= 2
        for name, fill in (("_category", -1), ("_advertiser", -1), ("_price", np.nan)):
            old = getattr(self, name)
            new = np.full(size, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _code(self, column: str, value: str) -> int:
        codes = self._codes[column]
        return codes.setdefault(value, len(codes))

    def set(self, iid: int, item: CatalogItem) -> None:
        self._grow(iid)
        self._category[iid] = self._code("category", item.category)
        self._advertiser[iid] = self._code("advertiser", item.advertiser)
        self._price[iid] = np.nan if item.price is None else item.price
        for tag in item.tags:
            self._tags.setdefault(tag, set()).add(iid)
        if item.tags:
            self._item_tags[iid] = item.tags

    def clear(self, iid: int) -> None:
        if iid >= len(self._price):
            return
        self._category[iid] = -1
        self._advertiser[iid] = -1
        self._price[iid] = np.nan
        for tag in self._item_tags.pop(iid, ()):
            members = self._tags.get(tag)
            if members is not None:
                members.discard(iid)
                if not members:
                    del self._tags[tag]

    def mask(self, flt: CatalogFilter, n_ids: int) -> np.ndarray:
        """Bool mask over ids ``0..n_ids-1``: True where the item passes every condition.

        Ids without metadata (deleted, never used) have category and advertiser code -1 and no
        price, so only a filter-free mask admits them; the index's live bitmap removes them.
        """
        self._grow(max(n_ids - 1, 0))
        mask = np.ones(n_ids, dtype=bool)
        for column, wanted in (("category", flt.categories), ("advertiser", flt.advertisers)):
            if wanted is None:
                continue
            codes = [self._codes[column][v] for v in wanted if v in self._codes[column]]
            values = (self._category if column == "category" else self._advertiser)[:n_ids]
            mask &= np.isin(values, np.asarray(codes, dtype=np.int32))
        with np.errstate(invalid="ignore"):
            if flt.min_price is not None:
                mask &= self._price[:n_ids] >= flt.min_price
            if flt.max_price is not None:
                mask &= self._price[:n_ids] <= flt.max_price
        for tag in flt.tags or ():
            tagged = np.zeros(n_ids, dtype=bool)
            members = np.fromiter(self._tags.get(tag, ()), dtype=np.int64)
            tagged[members[members < n_ids]] = True
            mask &= tagged
        return mask
