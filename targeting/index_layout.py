"""The compiled layout of a rule set: the keys, plans and packed arrays a ``ConceptIndex`` holds.

Plain frozen data, no model and no numbers computed here beyond packing: the signal keys (one per
distinct condition: ``ConceptColumn``, ``IabClauseKey``, ``LogoKey``, ``FaceKey``, ``SafetyKey``),
each campaign as signal indices (``CampaignPlan``), and the same lists packed for vectorized
reductions over campaigns (``SignalLists``, ``CampaignTable``, ``CampaignClauses``, ``IabTable``). See
``targeting.concept_index`` for the signal space they describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np

from targeting.rules_schema import Campaign

SignalKind = Literal["concept", "example", "iab", "logo", "face", "text", "safety"]


@dataclass(frozen=True)
class ConceptColumn:
    """One column of the concept matrix: a prompt or an example set, and its cosine threshold.

    ``what`` is the prompt, or the example paths (as written in the rules) joined by ``", "``.
    """

    kind: Literal["concept", "example"]
    what: str
    threshold: float
    sources: tuple[str, ...]


@dataclass(frozen=True)
class IabClauseKey:
    """A distinct ``iab`` clause: holds when a listed id (or a descendant) is in the top ``top_k``.

    ``threshold`` (cosine, or None) additionally requires that category's score to reach it.
    """

    ids: tuple[str, ...]
    top_k: int
    threshold: float | None


@dataclass(frozen=True)
class LogoKey:
    """A distinct logo condition: a ``brand`` match with score >= ``min_score``, box area >=
    ``min_area`` (fraction of the frame)."""

    brand: str
    min_score: float
    min_area: float


@dataclass(frozen=True)
class FaceKey:
    """A distinct face condition: the count of faces with score >= ``min_score`` and area >=
    ``min_area`` lies in ``[min_count, max_count]`` (``max_count`` None = no upper limit)."""

    min_count: int
    max_count: int | None
    min_area: float
    min_score: float


@dataclass(frozen=True)
class TextKey:
    """A distinct text condition: OCR reads one of ``phrases`` (as written) with score >=
    ``min_score``. ``words`` are the phrases in canonical form (``targeting.text_match``)."""

    phrases: tuple[str, ...]
    min_score: float
    words: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class SafetyKey:
    """A brand-safety class named in an exclusion; blocks when a flag reaches ``threshold``."""

    name: str
    threshold: float


@dataclass(frozen=True)
class CampaignPlan:
    """One campaign as signal indices.

    ``clause_signals[i]`` is the signal of ``campaign.target.clauses[i]`` (``all`` then ``any``);
    ``all_signals``/``any_signals``/``exclude_signals`` are the distinct signals of each part.
    ``exclude_concepts`` says whether an exclusion needs the frame embedding (see ``match``: a
    keyframe without one is blocked for such a campaign, fail-closed).
    """

    campaign: Campaign
    clause_signals: tuple[int, ...]
    all_signals: tuple[int, ...]
    any_signals: tuple[int, ...]
    exclude_signals: tuple[int, ...]
    exclude_concepts: bool


@dataclass(frozen=True, eq=False)
class SignalLists:
    """Per-campaign signal lists (the ``all`` part, the ``any`` part, ...), grouped by length so
    that one reduction covers every campaign of a group (vectorized over campaigns).

    ``groups`` holds one ``(camps, signals)`` pair per distinct list length ``L``: ``camps``
    (G,) int rows in ``plans`` and ``signals`` (G, L) int their lists, in the campaigns' order.
    Campaigns with an empty list are in no group. Per campaign (C,): ``group_of`` its group
    (-1: none) and ``slot_of`` its row in that group. Why groups and not one flat array for
    ``np.ufunc.reduceat``: reduceat pays its overhead once per run and keyframe, and 10,000
    campaigns are 10,000 runs of one to four signals; a group is one rectangular gather and one
    reduction along its ``L`` axis, and a rule set has only a few distinct lengths.
    """

    groups: tuple[tuple[np.ndarray, np.ndarray], ...]
    group_of: np.ndarray
    slot_of: np.ndarray

    @classmethod
    def of(cls, lists: Sequence[Sequence[int]]) -> SignalLists:
        by_len: dict[int, tuple[list[int], list[Sequence[int]]]] = {}
        for ci, sigs in enumerate(lists):
            if sigs:
                camps, rows = by_len.setdefault(len(sigs), ([], []))
                camps.append(ci)
                rows.append(sigs)
        groups = tuple(
            (np.asarray(camps, dtype=np.intp), np.asarray(rows, dtype=np.intp))
            for _, (camps, rows) in sorted(by_len.items())
        )
        group_of = np.full(len(lists), -1, dtype=np.intp)
        slot_of = np.zeros(len(lists), dtype=np.intp)
        for g, (members, _) in enumerate(groups):
            group_of[members] = g
            slot_of[members] = np.arange(members.size)
        return cls(groups, group_of, slot_of)

    def reduce(self, ufunc: np.ufunc, rows: np.ndarray, out: np.ndarray) -> None:
        """``out[c] = ufunc.reduce(rows[list of c])`` for every listed campaign ``c``.

        ``rows`` is (T, n): one row per signal (signal-major, so a gather copies whole rows);
        ``out`` (C, n) keeps its values for campaigns without a list.
        """
        for camps, signals in self.groups:
            out[camps] = ufunc.reduce(rows[signals], axis=1)

    def reduce_at(
        self, ufunc: np.ufunc, values: np.ndarray, rows: np.ndarray, camps: np.ndarray, empty: float
    ) -> np.ndarray:
        """(P,): ``ufunc.reduce(values[rows[i], list of camps[i]])`` for each pair ``i``, ``empty``
        for a campaign without a list. ``values`` is (n, T), one row per keyframe: ``reduce``
        for the few pairs that need it (only matching keyframes need their evidence). One flat
        ``take`` per list position, folded in place: a 2-D fancy index costs twice as much."""
        flat = values.ravel()
        out = np.full(camps.size, empty, dtype=values.dtype)
        group = self.group_of[camps]
        for g, (_, signals) in enumerate(self.groups):
            sel = np.flatnonzero(group == g)
            at = rows[sel] * values.shape[1]
            cols = signals[self.slot_of[camps[sel]]]  # (P_g, L)
            acc = flat.take(at + cols[:, 0])
            for j in range(1, cols.shape[1]):
                ufunc(acc, flat.take(at + cols[:, j]), out=acc)
            out[sel] = acc
        return out

    def __bool__(self) -> bool:
        return bool(self.groups)


@dataclass(frozen=True, eq=False)
class CampaignTable:
    """(C,) arrays over ``plans``: ``gap_s``, ``min_duration_s``, ``bid_cpm`` (float64),
    ``id_rank`` (int: position of the campaign id in sorted order, for deterministic ties) and
    the flight as ``flight_first``/``flight_last`` (int64 ``date.toordinal()``, inclusive; an
    open end is ``date.min``/``date.max``); ``ids`` and ``advertisers`` as Python tuples, which
    placements copy (cheaper to index than the campaign models' attributes)."""

    ids: tuple[str, ...]
    advertisers: tuple[str, ...]
    gap_s: np.ndarray
    min_duration_s: np.ndarray
    bid_cpm: np.ndarray
    id_rank: np.ndarray
    flight_first: np.ndarray
    flight_last: np.ndarray

    def flies_on(self, day: date) -> np.ndarray:
        """(C,) bool: ``Campaign.active_on(day)`` for every campaign, as one comparison."""
        d = day.toordinal()
        return (self.flight_first <= d) & (d <= self.flight_last)


@dataclass(frozen=True, eq=False)
class CampaignClauses:
    """Every campaign's distinct target-clause signals, as (P,) int arrays sorted by campaign
    then position: ``campaign`` (row in ``plans``), ``signal``, ``position`` (the signal's place
    among the campaign's distinct ``clause_signals``, so reasons keep the rules' order).

    Campaign-major because reasons are joined campaign by campaign (``targeting.reasons``): the
    lookups into the campaign-major matches then run in order, not at random."""

    campaign: np.ndarray
    signal: np.ndarray
    position: np.ndarray

    @classmethod
    def of(cls, plans: Sequence[CampaignPlan]) -> CampaignClauses:
        camp: list[int] = []
        sig: list[int] = []
        pos: list[int] = []
        for ci, p in enumerate(plans):
            for j, s in enumerate(dict.fromkeys(p.clause_signals)):
                camp.append(ci)
                sig.append(s)
                pos.append(j)
        return cls(
            np.asarray(camp, dtype=np.intp),
            np.asarray(sig, dtype=np.intp),
            np.asarray(pos, dtype=np.intp),
        )


@dataclass(frozen=True, eq=False)
class IabTable:
    """The IAB vocabulary and the compiled ``iab`` clauses.

    ``matrix`` (M, D) float32 rows are L2-normalized category embeddings for ``ids`` (M,).
    The *id space* (U ids) is ``ids`` plus every taxonomy ancestor of them; ``ancestors`` (M, L)
    maps each vocabulary row to the id-space indices of itself and its ancestors (padded by
    repeating itself). ``clause_ids`` (Q, W) lists each clause's ids as id-space indices, padded
    with ``U`` (a sentinel column that is never covered); ``clause_top_k`` (Q,) int and
    ``clause_threshold`` (Q,) float32 (-inf where the clause has none).
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    matrix: np.ndarray
    space: tuple[str, ...]
    ancestors: np.ndarray
    clause_ids: np.ndarray
    clause_top_k: np.ndarray
    clause_threshold: np.ndarray

    @property
    def k_max(self) -> int:
        return int(min(self.clause_top_k.max(initial=1), len(self.ids)))


@dataclass(frozen=True)
class IabHits:
    """Per keyframe x ``iab`` clause: ``hit`` (N, Q) bool, ``rank`` (N, Q) int (0-based rank of the
    best covering category, ``k_max`` where none), ``category`` (N, Q) int (vocabulary row of that
    category, -1 where none), ``score`` (N, Q) float32 (its cosine, 0 where none)."""

    hit: np.ndarray
    rank: np.ndarray
    category: np.ndarray
    score: np.ndarray
