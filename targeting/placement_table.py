"""Placements as columns: what ``match_table`` returns, ``Placement`` objects made on demand.

A 60 s video against 10,000 campaigns gives ~20,000 placements. As frozen ``Placement``
objects (with their reason tuples) they cost more than all of matching's array work together;
most consumers want a few of them (an ad server: the best ones) or write each one once
(JSONL, the placement store). ``PlacementTable`` keeps them as NumPy columns in rank order and
their reasons as indices into shared lists (``targeting.reasons.ReasonLists``): it is a
``Sequence[Placement]`` (``len``, indexing, iteration make placements equal to the ones
``match`` returns), and answers ``top``, ``rows``, ``map_reasons`` and ``json_lines`` without
making one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, overload

import numpy as np

from targeting.reasons import ReasonLists
from targeting.types import Placement, Reason

T = TypeVar("T")

PLACEMENT_JSON_KEYS = frozenset(
    ("media", "campaign", "start_s", "end_s", "score", "reasons", "advertiser", "bid_cpm", "rank")
)
"""The keys of ``Placement.to_json``; ``json_lines`` extras may not reuse them."""

PlacementRow = tuple[str, float, float, float, str, float, int]
"""campaign id, start_s, end_s, score, advertiser, bid_cpm, rank (Python values)."""


@dataclass(frozen=True, eq=False)
class PlacementTable(Sequence[Placement]):
    """The placements of one media in rank order (row ``i`` has rank ``i + 1``), as columns.

    ``campaign`` (P,) int64: the campaign's row in ``campaign_ids``/``advertisers`` (the
    index's ``CampaignTable``); ``start_s``, ``end_s`` (seconds), ``score`` (0..1), ``bid_cpm``
    (P,) float64; ``reason_list`` (P,) int64: the placement's list in ``reasons``. Checked on
    construction as ``Placement`` checks itself (times, reasons), so a table never holds a row
    that could not become a placement. No ``==``: compare ``list(table)``.
    """

    media: str
    campaign: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    score: np.ndarray
    bid_cpm: np.ndarray
    reason_list: np.ndarray
    reasons: ReasonLists | None
    campaign_ids: Sequence[str]
    advertisers: Sequence[str]

    def __post_init__(self) -> None:
        n = self.campaign.shape
        for name in ("start_s", "end_s", "score", "bid_cpm", "reason_list"):
            if getattr(self, name).shape != n:
                raise ValueError(
                    f"PlacementTable.{name} has shape {getattr(self, name).shape}, "
                    f"expected {n} like campaign"
                )
        if not n[0]:
            return
        if self.reasons is None:
            raise ValueError("PlacementTable with placements needs their reasons")
        ok = (self.start_s >= 0) & (self.start_s <= self.end_s) & np.isfinite(self.end_s)
        ok &= self.reasons.lengths[self.reason_list] > 0
        if not ok.all():
            self._make(np.flatnonzero(~ok)[:1])  # raises Placement's own error (first bad row)

    @classmethod
    def empty(cls, media: str) -> PlacementTable:
        """No placements (nothing flying, nothing matched)."""
        none_f, none_i = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        return cls(media, none_i, none_f, none_f, none_f, none_f, none_i, None, (), ())

    def __len__(self) -> int:
        return int(self.campaign.size)

    @overload
    def __getitem__(self, i: int) -> Placement: ...

    @overload
    def __getitem__(self, i: slice) -> list[Placement]: ...

    def __getitem__(self, i: int | slice) -> Placement | list[Placement]:
        if isinstance(i, slice):
            return self._make(np.arange(len(self))[i])
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"placement {i} of {n}")
        i %= n
        assert self.reasons is not None  # a non-empty table has them (__post_init__)
        c = int(self.campaign[i])
        return Placement(
            self.campaign_ids[c],
            self.media,
            float(self.start_s[i]),
            float(self.end_s[i]),
            float(self.score[i]),
            self.reasons.reasons(int(self.reason_list[i])),
            self.advertisers[c],
            float(self.bid_cpm[i]),
            i + 1,
        )

    def __iter__(self) -> Iterator[Placement]:
        return iter(self._make(np.arange(len(self))))

    def top(self, k: int, campaigns: Collection[str] = ()) -> list[Placement]:
        """The ``k`` best placements (rank order; of ``campaigns`` only, unless empty), made
        as objects; the rest stay columns. They keep their rank among all placements."""
        k = max(k, 0)
        if not campaigns:
            return self[:k]
        u, inv = np.unique(self.campaign, return_inverse=True)
        wanted = np.asarray([self.campaign_ids[c] in campaigns for c in u.tolist()], dtype=bool)
        return self._make(np.flatnonzero(wanted[inv])[:k])

    def rows(self) -> Iterator[PlacementRow]:
        """Every placement as ``PlacementRow`` values, in rank order, without objects."""
        ids, adv = self.campaign_ids, self.advertisers
        return (
            (ids[c], start, end, score, adv[c], bid, rank)
            for rank, (c, start, end, score, bid) in enumerate(
                zip(
                    self.campaign.tolist(),
                    self.start_s.tolist(),
                    self.end_s.tolist(),
                    self.score.tolist(),
                    self.bid_cpm.tolist(),
                    strict=True,
                ),
                start=1,
            )
        )

    def map_reasons(self, fn: Callable[[tuple[Reason, ...]], T]) -> list[T]:
        """``fn(reasons)`` of every placement in rank order, ``fn`` called once per distinct
        list of reasons (a writer's JSON of them, say)."""
        if not len(self):
            return []
        assert self.reasons is not None
        lists = self.reasons.all_reasons()
        done = [fn(rs) for rs in lists]
        return [done[j] for j in self.reason_list.tolist()]

    def json_lines(self, extra: Mapping[str, object] | None = None) -> list[str]:
        """``json.dumps({**p.to_json(), **extra})`` of every placement, in rank order, the same
        text, built from the columns: every distinct value (a campaign, a time, a score, a list
        of reasons) is written once (``json`` writes a float as its ``repr``), every line is
        one f-string of those pieces."""
        extra = dict(extra or {})
        finite = all(
            bool(np.isfinite(col).all())
            for col in (self.start_s, self.end_s, self.score, self.bid_cpm)
        )
        if not finite or PLACEMENT_JSON_KEYS & extra.keys():  # rare: the objects' own path
            return [json.dumps({**p.to_json(), **extra}) for p in self]
        if not len(self):
            return []
        dumps = json.dumps
        media = dumps(self.media)
        tail = ", " + dumps(extra)[1:-1] if extra else ""
        ids, adv = self.campaign_ids, self.advertisers
        reason_text: dict[Reason, str] = {}  # a reason is in many lists: each written once

        def reasons_json(rs: tuple[Reason, ...]) -> str:  # json.dumps of a list, by parts
            parts = []
            for r in rs:
                got = reason_text.get(r)
                if got is None:
                    got = reason_text[r] = dumps(r.to_json())
                parts.append(got)
            return "[" + ", ".join(parts) + "]"

        return [
            f'{{"media": {media}, "campaign": {c}, "start_s": {s}, "end_s": {e}, "score": {sc}, '
            f'"reasons": {rj}, "advertiser": {a}, "bid_cpm": {b}, "rank": {rank}{tail}}}'
            for rank, (c, s, e, sc, rj, a, b) in enumerate(
                zip(
                    _per_value(self.campaign, lambda c: dumps(ids[c])),
                    _per_float(self.start_s, lambda v: repr(round(v, 3))),
                    _per_float(self.end_s, lambda v: repr(round(v, 3))),
                    _per_float(self.score, lambda v: repr(round(v, 4))),
                    self.map_reasons(reasons_json),
                    _per_value(self.campaign, lambda c: dumps(adv[c])),
                    _per_float(self.bid_cpm, repr),
                    strict=True,
                ),
                start=1,
            )
        ]

    def _make(self, which: np.ndarray) -> list[Placement]:
        """Placements of rows ``which`` (int array), from Python lists of each column and
        ``Placement`` called positionally (about half the cost of keywords)."""
        if not which.size:
            return []
        assert self.reasons is not None
        lists = self.reasons.all_reasons() if which.size > len(self.reasons) else None
        sl = which
        media, ids, adv = self.media, self.campaign_ids, self.advertisers
        get = lists.__getitem__ if lists is not None else self.reasons.reasons
        return [
            Placement(ids[c], media, start, end, score, get(j), adv[c], bid, i + 1)
            for i, c, start, end, score, j, bid in zip(
                which.tolist(),
                self.campaign[sl].tolist(),
                self.start_s[sl].tolist(),
                self.end_s[sl].tolist(),
                self.score[sl].tolist(),
                self.reason_list[sl].tolist(),
                self.bid_cpm[sl].tolist(),
                strict=True,
            )
        ]


def _per_value(col: np.ndarray, fmt: Callable[[int], str]) -> list[str]:
    """``fmt`` of each value of int column ``col``, called once per distinct value."""
    uniq, inv = np.unique(col, return_inverse=True)
    done = [fmt(v) for v in uniq.tolist()]
    return [done[i] for i in inv.reshape(-1).tolist()]


def _per_float(col: np.ndarray, fmt: Callable[[float], str]) -> list[str]:
    """``fmt`` of each value of float64 column ``col``, called once per distinct bit pattern
    (so -0.0 and 0.0 stay apart, as their reprs do)."""
    uniq, inv = np.unique(np.ascontiguousarray(col, dtype=np.float64).view(np.int64),
                          return_inverse=True)  # fmt: skip
    done = [fmt(v) for v in uniq.view(np.float64).tolist()]
    return [done[i] for i in inv.reshape(-1).tolist()]
