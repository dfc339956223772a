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
safety   one per brand-safety class named in an exclusion  ``FrameFacts.safety``
======== ================================================= =============================

A prompt is embedded once however many campaigns use it; an example concept is the mean of its
example-image embeddings, re-normalized (one vector per distinct set of files). The same prompt
with two thresholds is two columns (two rows of the matrix), so ``hits = scores >= thresholds``
stays one comparison.

Targeting imports no model: embeddings come from a ``ConceptEmbedder`` and the IAB vocabulary
matrix arrives as a plain array with its ids (``vision.vocabulary`` builds it); only the pure-data
taxonomy (``vision.taxonomy``) is read here, for parent/child relations and names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from targeting.embedding import ConceptEmbedder
from targeting.rules_schema import (
    DEFAULT_EXCLUDE_THRESHOLD,
    Campaign,
    Concept,
)
from vision.errors import ModelError, RuleProblem, RulesError
from vision.safety_classes import SAFETY_BY_NAME
from vision.taxonomy import iab_by_id

MAX_CONCEPT_COLUMNS = 200_000
"""Most distinct (concept, threshold) columns in one index: 200k x 512 float32 is 400 MB."""
MAX_CAMPAIGNS = 100_000
"""Most campaigns compiled into one index."""
EMBED_BATCH = 512
"""Prompts or example files handed to the embedder per call, so memory stays bounded."""
NORM_EPS = 1e-6
"""An embedding with an L2 norm below this is treated as broken (a zero vector has no direction)."""

SignalKind = Literal["concept", "example", "iab", "logo", "face", "safety"]


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
class Flat:
    """Per-campaign index lists flattened for ``np.*.reduceat`` (vectorized over campaigns).

    ``flat`` holds the signal indices of every listed campaign back to back, ``starts`` where each
    campaign's run begins, ``camps`` which campaign (0..C-1) each run belongs to. Campaigns with an
    empty list are left out (reduceat cannot express an empty run).
    """

    flat: np.ndarray
    starts: np.ndarray
    camps: np.ndarray

    @classmethod
    def of(cls, lists: Sequence[Sequence[int]]) -> Flat:
        flat: list[int] = []
        starts: list[int] = []
        camps: list[int] = []
        for ci, sigs in enumerate(lists):
            if sigs:
                starts.append(len(flat))
                camps.append(ci)
                flat.extend(sigs)
        return cls(
            np.asarray(flat, dtype=np.intp),
            np.asarray(starts, dtype=np.intp),
            np.asarray(camps, dtype=np.intp),
        )

    def __bool__(self) -> bool:
        return self.flat.size > 0


@dataclass(frozen=True, eq=False)
class CampaignTable:
    """(C,) arrays over ``plans``: ``gap_s``, ``min_duration_s``, ``bid_cpm`` (float64) and
    ``id_rank`` (int: position of the campaign id in sorted order, for deterministic ties)."""

    gap_s: np.ndarray
    min_duration_s: np.ndarray
    bid_cpm: np.ndarray
    id_rank: np.ndarray


@dataclass(frozen=True, eq=False)
class ClauseMembers:
    """Signal -> the campaigns whose target uses it, as CSR arrays (for joining hits to placements).

    For signal ``s``, entries ``ptr[s]:ptr[s+1]`` of ``campaign`` (int, row in ``plans``) and
    ``position`` (int, the clause's first position in that campaign's ``clause_signals``, so
    reasons keep the rules' order).
    """

    ptr: np.ndarray
    campaign: np.ndarray
    position: np.ndarray

    @classmethod
    def of(cls, plans: Sequence[CampaignPlan], n_signals: int) -> ClauseMembers:
        sig: list[int] = []
        camp: list[int] = []
        pos: list[int] = []
        for ci, p in enumerate(plans):
            for j, s in enumerate(dict.fromkeys(p.clause_signals)):
                sig.append(s)
                camp.append(ci)
                pos.append(j)
        s_arr = np.asarray(sig, dtype=np.intp)
        order = np.argsort(s_arr, kind="stable")
        return cls(
            ptr=np.searchsorted(s_arr[order], np.arange(n_signals + 1)),
            campaign=np.asarray(camp, dtype=np.intp)[order],
            position=np.asarray(pos, dtype=np.intp)[order],
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


@dataclass(frozen=True, eq=False)
class ConceptIndex:
    """A rule set compiled for matching (see the module docstring for the signal layout).

    ``matrix`` (K, D) float32 has L2-normalized rows; ``thresholds`` (K,) float32 cosines.
    Signal ``s`` is a concept column for ``s < K``, then come ``iab_keys``, ``logo_keys``,
    ``face_keys``, ``safety_keys`` in that order (``offsets`` gives where each range starts).
    Build it with ``ConceptIndex.build``; it is immutable and safe to share between threads.
    """

    model_id: str
    dim: int
    columns: tuple[ConceptColumn, ...]
    matrix: np.ndarray
    thresholds: np.ndarray
    iab_keys: tuple[IabClauseKey, ...]
    iab: IabTable | None
    logo_keys: tuple[LogoKey, ...]
    face_keys: tuple[FaceKey, ...]
    safety_keys: tuple[SafetyKey, ...]
    plans: tuple[CampaignPlan, ...]
    all_flat: Flat
    any_flat: Flat
    clause_flat: Flat
    exclude_flat: Flat
    exclude_concepts: np.ndarray
    _pos: dict[str, int] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------------------- layout

    @cached_property
    def offsets(self) -> Mapping[str, int]:
        """Start of each signal range: ``concept``, ``iab``, ``logo``, ``face``, ``safety``, ``end``."""
        k = len(self.columns)
        q = k + len(self.iab_keys)
        g = q + len(self.logo_keys)
        f = g + len(self.face_keys)
        return MappingProxyType(
            {
                "concept": 0,
                "iab": k,
                "logo": q,
                "face": g,
                "safety": f,
                "end": f + len(self.safety_keys),
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
            gap_s=np.asarray([p.campaign.gap_s for p in self.plans], dtype=np.float64),
            min_duration_s=np.asarray(
                [p.campaign.min_duration_s for p in self.plans], dtype=np.float64
            ),
            bid_cpm=np.asarray([p.campaign.bid_cpm for p in self.plans], dtype=np.float64),
            id_rank=rank,
        )

    @cached_property
    def clause_members(self) -> ClauseMembers:
        """Which campaigns use each signal as a target clause (see ``ClauseMembers``)."""
        return ClauseMembers.of(self.plans, self.n_signals)

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
        for kind in ("iab", "logo", "face", "safety"):
            nxt = {"iab": "logo", "logo": "face", "face": "safety", "safety": "end"}[kind]
            if s < o[nxt]:
                return kind
        raise IndexError(f"signal {s} out of range 0..{o['end'] - 1}")

    def position(self, campaign: Campaign) -> int:
        """Row of ``campaign`` in ``plans``; ``ValueError`` if the index was built without it or
        from a different version of it (the index is stale: rebuild it after a rules change)."""
        pos = self._pos.get(campaign.id)
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
        embedder: ConceptEmbedder | None,
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
        campaign has an ``iab`` clause. Raises ``RulesError`` for rules that cannot be compiled
        (missing example image, unknown safety class, IAB id outside the vocabulary),
        ``ModelError`` when the embedder returns something unusable, ``ValueError`` for wiring
        mistakes (duplicate campaign ids, IAB clauses without a vocabulary).
        """
        if len(campaigns) > MAX_CAMPAIGNS:
            raise ValueError(f"{len(campaigns)} campaigns exceed MAX_CAMPAIGNS={MAX_CAMPAIGNS}")
        dim = int(embedder.dim) if embedder is not None else 0
        b = _Builder(rules_root)
        pos: dict[str, int] = {}
        for c in campaigns:
            if c.id in pos:
                raise ValueError(f"campaign id {c.id!r} appears twice: ids must be unique")
            pos[c.id] = len(pos)
            b.add(c)
        b.raise_problems()
        if len(b.columns) > MAX_CONCEPT_COLUMNS:
            raise ValueError(
                f"{len(b.columns)} distinct concepts exceed MAX_CONCEPT_COLUMNS={MAX_CONCEPT_COLUMNS}"
            )
        if embedder is None and (b.columns or b.iab_keys):
            raise ValueError(
                "these campaigns use concept or iab clauses, which need an embedder (CLIP)"
            )
        if embedder is None:
            matrix = np.zeros((0, 0), dtype=np.float32)
        else:
            matrix = _embed_columns(b.columns, embedder, dim, rules_root)
        iab = _iab_table(b, iab_matrix, iab_ids, dim)
        plans = tuple(b.plans)
        return cls(
            model_id=str(embedder.model_id) if embedder is not None else "none",
            dim=dim,
            columns=tuple(b.columns),
            matrix=matrix,
            thresholds=np.asarray([c.threshold for c in b.columns], dtype=np.float32),
            iab_keys=tuple(b.iab_keys),
            iab=iab,
            logo_keys=tuple(b.logo_keys),
            face_keys=tuple(b.face_keys),
            safety_keys=tuple(b.safety_keys),
            plans=plans,
            all_flat=Flat.of([p.all_signals for p in plans]),
            any_flat=Flat.of([p.any_signals for p in plans]),
            clause_flat=Flat.of([sorted(set(p.clause_signals)) for p in plans]),
            exclude_flat=Flat.of([p.exclude_signals for p in plans]),
            exclude_concepts=np.asarray([p.exclude_concepts for p in plans], dtype=bool),
            _pos=pos,
        )


# ----------------------------------------------------------------------------------- internals


class _Builder:
    """Assigns every distinct condition one slot per kind, then resolves slots to signals."""

    def __init__(self, rules_root: Path) -> None:
        self.root = rules_root
        self.columns: list[ConceptColumn] = []
        self.iab_keys: list[IabClauseKey] = []
        self.logo_keys: list[LogoKey] = []
        self.face_keys: list[FaceKey] = []
        self.safety_keys: list[SafetyKey] = []
        self._slots: dict[object, tuple[str, int]] = {}
        self._raw: list[
            tuple[Campaign, list[tuple[str, int]], int, list[tuple[str, int]], bool]
        ] = []
        self.problems: list[RuleProblem] = []
        self.plans: list[CampaignPlan] = []

    def _slot(self, key: object, kind: str, store: list) -> tuple[str, int]:
        got = self._slots.get((kind, key))
        if got is None:
            got = (kind, len(store))
            store.append(key)
            self._slots[(kind, key)] = got
        return got

    def _concept(
        self, c: Campaign, concept: Concept, exclusion: bool, where: str
    ) -> tuple[str, int]:
        if concept.threshold is not None:
            thr = float(concept.threshold)
        elif exclusion and concept.prompt is not None:
            thr = DEFAULT_EXCLUDE_THRESHOLD
        else:
            thr = float(concept.effective_threshold)
        if concept.prompt is not None:
            col = ConceptColumn("concept", concept.prompt, thr, (concept.prompt,))
        else:
            ex = tuple(sorted(set(concept.examples or ())))
            for rel in ex:
                if not (self.root / rel).is_file():
                    self.problems.append(
                        RuleProblem(
                            f"campaign {c.id}",
                            None,
                            where,
                            f"example image '{rel}' not found under {self.root}",
                        )
                    )
            col = ConceptColumn("example", ", ".join(ex), thr, ex)
        return self._slot(col, "concept", self.columns)

    def add(self, c: Campaign) -> None:
        clause_slots: list[tuple[str, int]] = []
        for i, clause in enumerate(c.target.clauses):
            part = "all" if i < len(c.target.all) else "any"
            j = i if part == "all" else i - len(c.target.all)
            where = f"target.{part}[{j}].{clause.kind}"
            if clause.concept is not None:
                clause_slots.append(self._concept(c, clause.concept, False, where))
            elif clause.iab is not None:
                th = clause.iab.threshold
                key = IabClauseKey(
                    tuple(clause.iab.ids), clause.iab.top_k, None if th is None else float(th)
                )
                clause_slots.append(self._slot(key, "iab", self.iab_keys))
            elif clause.logo is not None:
                lg = clause.logo
                key2 = LogoKey(lg.brand, float(lg.min_score), float(lg.min_area))
                clause_slots.append(self._slot(key2, "logo", self.logo_keys))
            elif clause.face is not None:
                f = clause.face
                key3 = FaceKey(f.min_count, f.max_count, float(f.min_area), float(f.min_score))
                clause_slots.append(self._slot(key3, "face", self.face_keys))
        excl: list[tuple[str, int]] = []
        for j, name in enumerate(c.exclude.safety):
            sc = SAFETY_BY_NAME.get(name)
            if sc is None:
                known = ", ".join(sorted(SAFETY_BY_NAME))
                self.problems.append(
                    RuleProblem(
                        f"campaign {c.id}",
                        None,
                        f"exclude.safety[{j}]",
                        f"unknown safety class '{name}' (known: {known})",
                    )
                )
                continue
            excl.append(self._slot(SafetyKey(name, sc.threshold), "safety", self.safety_keys))
        for j, concept in enumerate(c.exclude.concepts):
            excl.append(self._concept(c, concept, True, f"exclude.concepts[{j}]"))
        for lg in c.exclude.logos:
            key4 = LogoKey(lg.brand, float(lg.min_score), float(lg.min_area))
            excl.append(self._slot(key4, "logo", self.logo_keys))
        self._raw.append((c, clause_slots, len(c.target.all), excl, bool(c.exclude.concepts)))

    def raise_problems(self) -> None:
        if self.problems:
            raise RulesError(self.problems)
        k = len(self.columns)
        base = {
            "concept": 0,
            "iab": k,
            "logo": k + len(self.iab_keys),
            "face": k + len(self.iab_keys) + len(self.logo_keys),
            "safety": k + len(self.iab_keys) + len(self.logo_keys) + len(self.face_keys),
        }
        for c, slots, n_all, excl, ex_concepts in self._raw:
            sigs = tuple(base[kind] + i for kind, i in slots)
            ex = tuple(sorted({base[kind] + i for kind, i in excl}))
            self.plans.append(
                CampaignPlan(
                    campaign=c,
                    clause_signals=sigs,
                    all_signals=tuple(sorted(set(sigs[:n_all]))),
                    any_signals=tuple(sorted(set(sigs[n_all:]))),
                    exclude_signals=ex,
                    exclude_concepts=ex_concepts,
                )
            )


def _batches(items: Sequence[str] | Sequence[Path], size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _checked(out: object, n: int, dim: int, model_id: str, what: str) -> np.ndarray:
    arr = np.asarray(out)
    if arr.shape != (n, dim) or not np.issubdtype(arr.dtype, np.floating):
        raise ModelError(
            f"embedder {model_id!r} returned {arr.shape} {arr.dtype} for {n} {what}; "
            f"expected ({n}, {dim}) floats"
        )
    arr = arr.astype(np.float32)
    norms = np.linalg.norm(arr, axis=1)
    if not np.all(np.isfinite(arr)) or np.any(norms < NORM_EPS):
        raise ModelError(
            f"embedder {model_id!r} returned a non-finite or zero embedding for {what}"
        )
    return arr / norms[:, None]


def _embed_columns(
    columns: Sequence[ConceptColumn], embedder: ConceptEmbedder, dim: int, root: Path
) -> np.ndarray:
    """(K, D) float32, unit rows: prompts in one pass, example files in one pass, each once."""
    model_id = str(embedder.model_id)
    prompts = list(dict.fromkeys(c.what for c in columns if c.kind == "concept"))
    files = list(dict.fromkeys(s for c in columns if c.kind == "example" for s in c.sources))
    text_vec: dict[str, np.ndarray] = {}
    for batch in _batches(prompts, EMBED_BATCH):
        got = _checked(embedder.embed_texts(list(batch)), len(batch), dim, model_id, "prompts")
        text_vec.update(zip(batch, got, strict=True))
    file_vec: dict[str, np.ndarray] = {}
    for batch in _batches(files, EMBED_BATCH):
        paths = [root / rel for rel in batch]
        got = _checked(
            embedder.embed_image_files(paths), len(batch), dim, model_id, "example images"
        )
        file_vec.update(zip(batch, got, strict=True))
    matrix = np.zeros((len(columns), dim), dtype=np.float32)
    for i, col in enumerate(columns):
        if col.kind == "concept":
            matrix[i] = text_vec[col.what]
        else:
            mean = np.mean([file_vec[s] for s in col.sources], axis=0)
            norm = float(np.linalg.norm(mean))
            if norm < NORM_EPS:
                raise ModelError(
                    f"example images {col.what} average to a zero embedding with {model_id!r}: "
                    "use examples that show the same thing"
                )
            matrix[i] = mean / norm
    return matrix


def _iab_table(
    b: _Builder, iab_matrix: np.ndarray | None, iab_ids: Sequence[str] | None, dim: int
) -> IabTable | None:
    if not b.iab_keys:
        return None
    if iab_matrix is None or iab_ids is None:
        users = sorted({c.id for c, slots, *_ in b._raw if any(k == "iab" for k, _ in slots)})
        raise ValueError(
            f"campaign(s) {', '.join(users[:5])} have iab clauses but no IAB vocabulary was given: "
            "pass iab_matrix and iab_ids (vision.vocabulary.ConceptVocabulary.from_iab())"
        )
    ids = tuple(str(i) for i in iab_ids)
    mat = np.asarray(iab_matrix, dtype=np.float32)
    if mat.ndim != 2 or mat.shape != (len(ids), dim):
        raise ValueError(
            f"iab_matrix must be ({len(ids)}, {dim}) for {len(ids)} ids, got {mat.shape}"
        )
    if len(set(ids)) != len(ids):
        raise ValueError("iab_ids must be unique")
    taxonomy = iab_by_id()
    space: dict[str, int] = {}
    chains: list[list[int]] = []
    for cid in ids:
        chain: list[int] = []
        cur: str | None = cid
        while cur is not None and len(chain) < 16:
            chain.append(space.setdefault(cur, len(space)))
            cat = taxonomy.get(cur)
            cur = cat.parent if cat is not None else None
        chains.append(chain)
    depth = max(len(ch) for ch in chains)
    ancestors = np.asarray([ch + [ch[0]] * (depth - len(ch)) for ch in chains], dtype=np.intp)
    problems = []
    width = max(len(k.ids) for k in b.iab_keys)
    clause_ids = np.full((len(b.iab_keys), width), len(space), dtype=np.intp)
    for q, key in enumerate(b.iab_keys):
        for j, iid in enumerate(key.ids):
            if iid not in space:
                users = sorted({c.id for c, slots, *_ in b._raw if ("iab", q) in slots})
                problems.append(
                    RuleProblem(
                        f"campaign {users[0]}",
                        None,
                        "target.iab",
                        f"IAB id '{iid}' is neither in the IAB vocabulary nor a parent of one of "
                        "its categories, so it could never match",
                    )
                )
            else:
                clause_ids[q, j] = space[iid]
    if problems:
        raise RulesError(problems)
    names = tuple(taxonomy[i].name if i in taxonomy else i for i in ids)
    return IabTable(
        ids=ids,
        names=names,
        matrix=mat,
        space=tuple(space),
        ancestors=ancestors,
        clause_ids=clause_ids,
        clause_top_k=np.asarray([k.top_k for k in b.iab_keys], dtype=np.int64),
        clause_threshold=np.asarray(
            [-np.inf if k.threshold is None else k.threshold for k in b.iab_keys], dtype=np.float32
        ),
    )
