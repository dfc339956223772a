"""Campaigns compiled for matching: every signal a rule set can ask about, laid out as columns.

Matching 10,000 campaigns against a 100-keyframe timeline must not be a Python loop over
campaigns x keyframes x clauses. So the rule set is compiled once (per rules version) into a flat
*signal space* of ``T`` columns, each a yes/no question about one keyframe, and every campaign
into lists of column indices:

======== ================================================= =============================
range    signal                                            computed from
======== ================================================= =============================
concept  one per distinct (prompt or example set, threshold) ``embedding @ matrix.T`` (one
         -> the (K, D) concept matrix and (K,) thresholds  product for all campaigns)
iab      one per distinct (ids, top_k, threshold)          the frame's top-k IAB categories
logo     one per distinct (brand, min_score, min_area)     ``FrameFacts.logos``
face     one per distinct (min_count, max_count, ...)      ``FrameFacts.detections`` faces
text     one per distinct (phrases, min_score)             ``FrameFacts.text`` (OCR reads)
safety   one per brand-safety class named in an exclusion  ``FrameFacts.safety``
======== ================================================= =============================

A prompt is embedded once however many campaigns use it; an example concept is the mean of its
example-image embeddings, re-normalized (one vector per distinct set of files). The same prompt
with two thresholds is two columns (two rows of the matrix), so ``hits = scores >= thresholds``
stays one comparison.

The parts: ``targeting.index_layout`` holds the compiled-layout dataclasses (keys, plans, flat
arrays), ``targeting.index_builder`` compiles campaigns into them and embeds the concepts, and
``ConceptIndex`` here answers questions about frames with them.

Targeting imports no model: embeddings come from a ``SemanticModel`` and the IAB vocabulary
matrix arrives as a plain array with its ids (``vision.vocabulary`` builds it); only the pure-data
taxonomy (``vision.taxonomy``) is read here, for parent/child relations and names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import numpy as np

from targeting.index_builder import (
    EMBED_BATCH,
    MAX_CAMPAIGNS,
    MAX_CONCEPT_COLUMNS,
    NORM_EPS,
    CompiledIndex,
    compile_index,
)
from targeting.index_layout import (
    CampaignClauses,
    CampaignPlan,
    CampaignTable,
    ConceptColumn,
    FaceKey,
    IabClauseKey,
    IabHits,
    IabTable,
    LogoKey,
    SafetyKey,
    SignalKind,
    SignalLists,
    TextKey,
)
from targeting.rules_schema import Campaign
from vision.errors import ModelError
from vision.semantic import SemanticModel

__all__ = [
    "EMBED_BATCH",
    "MAX_CAMPAIGNS",
    "MAX_CONCEPT_COLUMNS",
    "NORM_EPS",
    "CampaignClauses",
    "CampaignPlan",
    "CampaignTable",
    "ConceptColumn",
    "ConceptIndex",
    "FaceKey",
    "IabClauseKey",
    "IabHits",
    "IabTable",
    "LogoKey",
    "SafetyKey",
    "SignalKind",
    "SignalLists",
    "TextKey",
]


@dataclass(frozen=True, eq=False)
class ConceptIndex(CompiledIndex):
    """A rule set compiled for matching (see the module docstring for the signal layout).

    ``matrix`` (K, D) float32 has L2-normalized rows; ``thresholds`` (K,) float32 cosines.
    Signal ``s`` is a concept column for ``s < K``, then come ``iab_keys``, ``logo_keys``,
    ``face_keys``, ``text_keys``, ``safety_keys`` in that order (``offsets`` gives where each
    range starts).
    Build it with ``ConceptIndex.build``; it is immutable and safe to share between threads.
    """

    # the compiled parts (``CompiledIndex``'s fields, ``positions`` included) come first, then:
    all_lists: SignalLists
    any_lists: SignalLists
    clause_lists: SignalLists
    exclude_lists: SignalLists
    exclude_concepts: np.ndarray

    # ------------------------------------------------------------------------------- layout

    @cached_property
    def offsets(self) -> Mapping[str, int]:
        """Start of each signal range: ``concept``, ``iab``, ``logo``, ``face``, ``text``,
        ``safety``, ``end``."""
        k = len(self.columns)
        q = k + len(self.iab_keys)
        g = q + len(self.logo_keys)
        f = g + len(self.face_keys)
        x = f + len(self.text_keys)
        return MappingProxyType(
            {
                "concept": 0,
                "iab": k,
                "logo": q,
                "face": g,
                "text": f,
                "safety": x,
                "end": x + len(self.safety_keys),
            }
        )

    @cached_property
    def target_signals(self) -> np.ndarray:
        """Sorted signal indices used by some target clause (those reasons can name), (S,) int."""
        used = {s for p in self.plans for s in p.clause_signals}
        return np.asarray(sorted(used), dtype=np.intp)

    @cached_property
    def campaign_table(self) -> CampaignTable:
        """Per-campaign numbers as (C,) arrays, for segmenting all campaigns at once."""
        ids = [p.campaign.id for p in self.plans]
        rank = np.empty(len(ids), dtype=np.intp)
        rank[np.argsort(np.asarray(ids, dtype=object), kind="stable")] = np.arange(len(ids))
        return CampaignTable(
            ids=tuple(ids),
            advertisers=tuple(p.campaign.advertiser for p in self.plans),
            gap_s=np.asarray([p.campaign.gap_s for p in self.plans], dtype=np.float64),
            min_duration_s=np.asarray(
                [p.campaign.min_duration_s for p in self.plans], dtype=np.float64
            ),
            bid_cpm=np.asarray([p.campaign.bid_cpm for p in self.plans], dtype=np.float64),
            id_rank=rank,
            flight_first=np.asarray([_flight_days(p.campaign)[0] for p in self.plans], np.int64),
            flight_last=np.asarray([_flight_days(p.campaign)[1] for p in self.plans], np.int64),
        )

    @cached_property
    def campaign_clauses(self) -> CampaignClauses:
        """Every campaign's distinct target-clause signals (see ``CampaignClauses``)."""
        return CampaignClauses.of(self.plans)

    @property
    def n_signals(self) -> int:
        return self.offsets["end"]

    @property
    def campaigns(self) -> tuple[Campaign, ...]:
        return tuple(p.campaign for p in self.plans)

    def signal_kind(self, s: int) -> SignalKind:
        """What kind of question signal ``s`` asks (``concept`` and ``example`` share a range)."""
        o = self.offsets
        if s < o["iab"]:
            return self.columns[s].kind
        ranges: tuple[tuple[SignalKind, str], ...] = (
            ("iab", "logo"),
            ("logo", "face"),
            ("face", "text"),
            ("text", "safety"),
            ("safety", "end"),
        )
        for kind, nxt in ranges:
            if s < o[nxt]:
                return kind
        raise IndexError(f"signal {s} out of range 0..{o['end'] - 1}")

    def positions_of(self, campaigns: Sequence[Campaign]) -> np.ndarray:
        """Rows of ``campaigns`` in ``plans`` as (len(campaigns),) int, checked as ``position``
        checks one. The usual call passes the very campaigns the index was built from, in its
        order: recognized by identity in one pass, so 10,000 campaigns cost no dict lookups."""
        plans = self.plans
        if len(campaigns) == len(plans) and all(
            c is p.campaign for c, p in zip(campaigns, plans, strict=True)
        ):
            return np.arange(len(plans), dtype=np.intp)
        return np.asarray([self.position(c) for c in campaigns], dtype=np.intp)

    def position(self, campaign: Campaign) -> int:
        """Row of ``campaign`` in ``plans``; ``ValueError`` if the index was built without it or
        from a different version of it (the index is stale: rebuild it after a rules change)."""
        pos = self.positions.get(campaign.id)
        if pos is None:
            raise ValueError(
                f"campaign {campaign.id!r} is not in the concept index: rebuild the ConceptIndex "
                "from the current rules"
            )
        known = self.plans[pos].campaign
        if known is not campaign and known != campaign:
            raise ValueError(
                f"campaign {campaign.id!r} changed since the concept index was built: rebuild the "
                "ConceptIndex from the current rules"
            )
        return pos

    # ------------------------------------------------------------------------------- scoring

    def check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """``embeddings`` as (N, D) float32, or ``ModelError`` when D is not this index's."""
        arr = np.asarray(embeddings)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ModelError(
                f"frame embeddings are {arr.shape} but the concept index was built with "
                f"{self.model_id!r} ({self.dim}-d): analyze media and embed rules with the same model"
            )
        return arr.astype(np.float32, copy=False)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine of every keyframe with every concept column: (N, D) -> (N, K) float32.

        One matrix product for all campaigns; embeddings must be L2-normalized.
        """
        return self.check_embeddings(embeddings) @ self.matrix.T

    def hits(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, K) bool: ``scores >= thresholds``."""
        return self.scores(embeddings) >= self.thresholds

    def iab_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine with every IAB vocabulary category: (N, D) -> (N, M) float32."""
        if self.iab is None:
            raise ValueError("this concept index has no IAB vocabulary (no campaign uses iab)")
        return self.check_embeddings(embeddings) @ self.iab.matrix.T

    def iab_top(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each keyframe's best ``k_max`` IAB categories, best first (ties: vocabulary order).

        Returns ``(rows, scores)``: (N, k_max) int vocabulary rows and their (N, k_max) float32
        cosines, from one (N, D) x (D, M) product.
        """
        scores = self.iab_scores(embeddings)
        assert self.iab is not None
        k = self.iab.k_max
        n, m = scores.shape
        if k < m:
            cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            cand = np.broadcast_to(np.arange(m), (n, m))
        cand_scores = np.take_along_axis(scores, cand, axis=1)
        order = np.lexsort((cand, -cand_scores), axis=1)
        rows = np.take_along_axis(cand, order, axis=1)
        return rows, np.take_along_axis(scores, rows, axis=1)

    def iab_hits(self, embeddings: np.ndarray) -> IabHits:
        """Evaluate every ``iab`` clause on every keyframe, vectorized over clauses.

        For each frame, each id in the id space gets the best rank at which it is *covered* (a
        top-k category is the id or a descendant of it, and reaches the clause's threshold);
        a clause holds when the best rank over its ids is below its ``top_k``.
        """
        q = len(self.iab_keys)
        n = int(np.asarray(embeddings).shape[0])
        if q == 0 or n == 0 or self.iab is None:
            z = np.zeros((n, q), dtype=np.int64)
            return IabHits(z.astype(bool), z, z - 1, z.astype(np.float32))
        tab = self.iab
        rows, top_scores = self.iab_top(embeddings)
        k = tab.k_max
        u = len(tab.space)
        frame = np.arange(n)[:, None]
        hit = np.zeros((n, q), dtype=bool)
        rank = np.full((n, q), k, dtype=np.int64)
        for thr in np.unique(tab.clause_threshold):
            cols = np.flatnonzero(tab.clause_threshold == thr)
            best = np.full((n, u + 1), k, dtype=np.int64)
            for r in range(k - 1, -1, -1):  # worst rank first, so the best rank is written last
                ok = top_scores[:, r] >= thr
                if ok.any():
                    sel = frame[ok]
                    best[sel, tab.ancestors[rows[ok, r]]] = r
            got = best[:, tab.clause_ids[cols]].min(axis=2)  # (N, Qg)
            rank[:, cols] = got
            hit[:, cols] = got < tab.clause_top_k[cols]
        safe = np.minimum(rank, k - 1)
        category = np.where(hit, np.take_along_axis(rows, safe, axis=1), -1)
        score = np.where(hit, np.take_along_axis(top_scores, safe, axis=1), 0.0).astype(np.float32)
        return IabHits(hit, np.where(hit, rank, k), category, score)

    # ------------------------------------------------------------------------------- build

    @classmethod
    def build(
        cls,
        campaigns: Sequence[Campaign],
        embedder: SemanticModel | None,
        *,
        rules_root: Path,
        iab_matrix: np.ndarray | None = None,
        iab_ids: Sequence[str] | None = None,
    ) -> ConceptIndex:
        """Compile ``campaigns`` (ids unique) and embed every distinct concept once.

        ``embedder`` may be None when no campaign has a concept or IAB clause (logo and face
        rules need no model): the index then has no embedding space (``dim`` 0).

        ``rules_root`` resolves example paths (written relative to the rules directory).
        ``iab_matrix`` (M, D) and ``iab_ids`` (M,) are the IAB vocabulary (e.g.
        ``vision.vocabulary.ConceptVocabulary.from_iab()`` and its matrix); required only when a
        campaign has an ``iab`` clause. Raises ``ModelError`` when the embedder returns
        something unusable and ``ValueError`` for wiring mistakes only: duplicate campaign ids,
        IAB clauses without a vocabulary, and campaigns that did not come through
        ``load_rules`` (a missing example, an unknown safety class or IAB id: the loader reports
        those at file:line, so the index does not report them a second way).
        """
        got = compile_index(
            campaigns, embedder, rules_root=rules_root, iab_matrix=iab_matrix, iab_ids=iab_ids
        )
        plans = got.plans
        return cls(
            **{f.name: getattr(got, f.name) for f in fields(CompiledIndex)},
            all_lists=SignalLists.of([p.all_signals for p in plans]),
            any_lists=SignalLists.of([p.any_signals for p in plans]),
            clause_lists=SignalLists.of([sorted(set(p.clause_signals)) for p in plans]),
            exclude_lists=SignalLists.of([p.exclude_signals for p in plans]),
            exclude_concepts=np.asarray([p.exclude_concepts for p in plans], dtype=bool),
        )


def _flight_days(c: Campaign) -> tuple[int, int]:
    """``c``'s flight as inclusive day ordinals (``CampaignTable``): open ends are unbounded."""
    f = c.flight
    first = f.start if f is not None and f.start is not None else date.min
    last = f.end if f is not None and f.end is not None else date.max
    return first.toordinal(), last.toordinal()
