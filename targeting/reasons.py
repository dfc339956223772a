"""Reasons: which signal held, where and how strongly, as ``Reason`` objects.

``reason_for`` names one signal hit in the rules' words (a prompt and its threshold, an IAB
category and its rank, a brand and the finders that saw it (matcher, detector), a face count, a safety class); ``placement_reasons`` picks, per
kept segment and per clause that held, the ``MAX_REASONS_PER_CLAUSE`` strongest keyframes, as a
vectorized join of hits x campaigns using the signal x matching keyframes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.segments import Segments
from targeting.signals import FrameSignals, Hits, Matches, logo_source_names
from targeting.types import Reason
from vision.types import Box

MAX_REASONS_PER_CLAUSE = 2
"""A placement lists, per clause that held, at most this many keyframes (the strongest)."""


def signal_boxes(boxes: np.ndarray) -> list[Box | None]:
    """(H, 4) signal boxes (NaN: none) as Python boxes, all at once (per box, NumPy's overhead
    would cost more than the reason it goes into)."""
    has = ~np.isnan(boxes).any(axis=1)
    return [
        (b[0], b[1], b[2], b[3]) if ok else None
        for b, ok in zip(boxes.tolist(), has.tolist(), strict=True)
    ]


def signal_box(sig_box: np.ndarray) -> Box | None:
    """One (4,) signal box (NaN: none) as a Python box."""
    return signal_boxes(sig_box[None, :])[0]


def reason_for(
    index: ConceptIndex,
    s: int,
    t: float,
    raw: float,
    box: Box | None,
    aux_a: int,
    aux_b: int,
    *,
    exclusion: bool = False,
) -> Reason:
    """The Reason for signal ``s`` holding at keyframe time ``t`` (see ``FrameDecision``)."""
    o = index.offsets
    kind = index.signal_kind(s)
    if kind in ("concept", "example"):
        col = index.columns[s]
        if exclusion:
            return Reason(
                "exclusion",
                f"concept:{col.what}",
                raw,
                t,
                detail=f"excluded, cosine >= {col.threshold:g}",
            )
        return Reason(kind, col.what, raw, t, detail=f"cosine >= {col.threshold:g}")
    if kind == "iab":
        key = index.iab_keys[s - o["iab"]]
        assert index.iab is not None
        cat_id, name = index.iab.ids[aux_a], index.iab.names[aux_a]
        detail = f"{name}: rank {aux_b + 1} of top {key.top_k} (target {', '.join(key.ids)})"
        return Reason("iab", cat_id, raw, t, detail=detail)
    if kind == "logo":
        lk = index.logo_keys[s - o["logo"]]
        seen = " and ".join(logo_source_names(aux_a)) or "unknown finder"
        if exclusion:
            return Reason(
                "exclusion", f"logo:{lk.brand}", raw, t, box, detail=f"excluded logo, by {seen}"
            )
        return Reason("logo", lk.brand, raw, t, box, detail=f"score >= {lk.min_score:g}, by {seen}")
    if kind == "face":
        fk = index.face_keys[s - o["face"]]
        limit = f"{fk.min_count}..{fk.max_count}" if fk.max_count else f">= {fk.min_count}"
        what = f"{aux_a} face" + ("s" if aux_a != 1 else "")
        detail = f"count {limit}, area >= {fk.min_area:g}, score >= {fk.min_score:g}"
        return Reason("face", what, raw, t, box, detail=detail)
    if kind == "text":
        tk = index.text_keys[s - o["text"]]
        phrase = tk.phrases[aux_a]
        edits = f"{aux_b} OCR edit" + ("s" if aux_b != 1 else "")
        if exclusion:
            return Reason("exclusion", f"text:{phrase}", raw, t, box, detail=f"excluded, {edits}")
        return Reason("text", phrase, raw, t, box, detail=f"{edits}, score >= {tk.min_score:g}")
    sk = index.safety_keys[s - o["safety"]]
    return Reason("exclusion", sk.name, raw, t, box, detail=f"safety score >= {sk.threshold:g}")


def reason_at(
    index: ConceptIndex, sig: FrameSignals, i: int, s: int, t: float, *, exclusion: bool = False
) -> Reason:
    """The Reason for signal ``s`` at row ``i`` of dense signals ``sig`` (keyframe time ``t``)."""
    off = index.offsets["logo"]
    b = signal_box(sig.box[i, s - off]) if s >= off else None
    return reason_for(
        index,
        s,
        t,
        float(sig.raw[i, s]),
        b,
        int(sig.aux_a[i, s]),
        int(sig.aux_b[i, s]),
        exclusion=exclusion,
    )


def expand(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ranges ``starts[i] : starts[i] + counts[i]`` back to back: (owner ``i``, index) per
    element, as two (sum(counts),) int arrays (a vectorized nested loop)."""
    owner = np.repeat(np.arange(counts.size), counts)
    within = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + within


def placement_reasons(
    segs: Segments, m: Matches, hits: Hits, index: ConceptIndex, times: np.ndarray, n: int
) -> ReasonLists:
    """Per kept segment, per clause that held on its matching keyframes (rules order), the
    ``MAX_REASONS_PER_CLAUSE`` strongest keyframes: a join of clauses x hits x matches.

    The join runs campaign by campaign: each clause of a campaign with a kept segment meets
    the hits of its signal (strongest first), each (campaign, keyframe) is looked up in the
    campaign-major matches, and one stable sort by segment then yields every segment's hits
    in clause order, strongest first within a clause. The result names hits by index
    (``ReasonLists``): no ``Reason`` exists until a placement is materialized."""
    cc = index.campaign_clauses
    placed = np.zeros(len(index.plans), dtype=bool)
    placed[segs.campaign] = True
    pair = np.flatnonzero(placed[cc.campaign])  # the clauses of campaigns with a placement
    signal_start = np.searchsorted(hits.signal, np.arange(index.n_signals + 1))
    sig = cc.signal[pair]
    p, h = expand(signal_start[sig], signal_start[sig + 1] - signal_start[sig])
    pair = pair[p]
    key = cc.campaign[pair].astype(np.int64) * n + hits.row[h]
    pos = np.minimum(np.searchsorted(m.key, key), m.key.size - 1)
    seg = np.where(m.key[pos] == key, segs.of_match[pos], -1)
    ok = seg >= 0
    h, seg, clause = h[ok], seg[ok], cc.position[pair[ok]]
    order = np.argsort(seg, kind="stable")  # generated in (clause, strength) order per campaign
    h, seg, clause = h[order], seg[order], clause[order]
    group = np.concatenate(([True], (seg[1:] != seg[:-1]) | (clause[1:] != clause[:-1])))
    starts = np.flatnonzero(group)
    rank = np.arange(h.size) - np.repeat(starts, np.diff(np.concatenate((starts, [h.size]))))
    keep = rank < MAX_REASONS_PER_CLAUSE
    return ReasonLists.group(h[keep], seg[keep], segs.campaign.size, hits, index, times)


ROW_HASH = np.random.default_rng(20261203).integers(1, 2**62, size=64, dtype=np.int64) | 1
"""Odd multipliers hashing an int row to one int64 (``distinct_rows``); rows wider than this
are hashed in strides of it."""


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a (R, W) int64 array: ``(pick, of_row)``, ``rows[pick]`` distinct and
    ``rows[pick][of_row] == rows`` (R,) int64. Each row is hashed to one int64 (a wrapping dot
    product) and the hashes sorted, five times faster than sorting the rows' bytes; a
    collision, checked for, falls back to that exact sort."""
    mult = np.resize(ROW_HASH, rows.shape[1])
    with np.errstate(over="ignore"):
        code = (rows + 2) @ mult
    _, pick, of_row = np.unique(code, return_index=True, return_inverse=True)
    of_row = of_row.reshape(-1)
    if not np.array_equal(rows[pick][of_row], rows):  # two rows share a hash
        raw = np.ascontiguousarray(rows).view(np.dtype((np.void, 8 * rows.shape[1]))).ravel()
        _, pick, of_row = np.unique(raw, return_index=True, return_inverse=True)
        of_row = of_row.reshape(-1)
    return pick.astype(np.int64), of_row.astype(np.int64)


@dataclass(frozen=True, eq=False)
class ReasonLists:
    """The reasons of S kept segments as indices into shared lists, ``Reason`` objects made on
    first use.

    ``of_segment`` (S,) int64: the list of each segment; ``lists`` (L, W) int64: list ``j``
    names distinct hits ``lists[j, :lengths[j]]`` (-1 pads), in the order its placement lists
    them; the hits' fields (H,) are ``signal``, ``t`` (keyframe seconds), ``raw``, ``box``
    (H, 4) NaN when none, ``aux_a``, ``aux_b`` (see ``Hits``).

    Why indices: reasons repeat (a face seen on a keyframe is the reason of hundreds of face
    campaigns; 20,000 placements of 10,000 campaigns name fewer than 1,000 distinct lists),
    and a consumer that writes JSON or rows needs each list once, not 20,000 tuples. Holds
    ``index`` (to word the reasons) for as long as it lives."""

    index: ConceptIndex
    of_segment: np.ndarray
    lists: np.ndarray
    lengths: np.ndarray
    signal: np.ndarray
    t: np.ndarray
    raw: np.ndarray
    box: np.ndarray
    aux_a: np.ndarray
    aux_b: np.ndarray
    _reasons: dict[int, Reason] = field(default_factory=dict, init=False, repr=False)
    _tuples: dict[int, tuple[Reason, ...]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def group(
        cls,
        h: np.ndarray,
        seg: np.ndarray,
        n_segs: int,
        hits: Hits,
        index: ConceptIndex,
        times: np.ndarray,
    ) -> ReasonLists:
        """Hits ``h`` of segments ``seg`` (sorted, in 0..n_segs-1; in reason order within a
        segment) as shared lists: segment rows padded to one width, the distinct rows found
        without a Python loop over segments (``distinct_rows``)."""
        present = np.zeros(hits.signal.size, dtype=bool)
        present[h] = True
        distinct = np.flatnonzero(present)
        which = (np.cumsum(present) - 1)[h]  # h renumbered 0.. over the distinct hits
        counts = np.bincount(seg, minlength=n_segs)
        width = max(int(counts.max(initial=0)), 1)
        padded = np.full((n_segs, width), -1, dtype=np.int64)
        first = np.cumsum(counts) - counts
        padded[seg, np.arange(seg.size) - first[seg]] = which
        pick, of_segment = distinct_rows(padded)
        lists = padded[pick]
        return cls(
            index,
            of_segment,
            lists,
            counts[pick],
            hits.signal[distinct],
            times[hits.row[distinct]],
            hits.raw[distinct],
            hits.box[distinct],
            hits.aux_a[distinct],
            hits.aux_b[distinct],
        )

    def __len__(self) -> int:
        """The number of distinct lists."""
        return int(self.lists.shape[0])

    def reasons(self, j: int) -> tuple[Reason, ...]:
        """List ``j`` as Reason objects (made once, then shared by every placement naming it)."""
        got = self._tuples.get(j)
        if got is None:
            got = self._tuples[j] = tuple(
                self._reason(k) for k in self.lists[j, : self.lengths[j]].tolist()
            )
        return got

    def _reason(self, k: int) -> Reason:
        got = self._reasons.get(k)
        if got is None:
            got = self._reasons[k] = reason_for(
                self.index,
                int(self.signal[k]),
                float(self.t[k]),
                float(self.raw[k]),
                signal_box(self.box[k]),
                int(self.aux_a[k]),
                int(self.aux_b[k]),
            )
        return got

    def all_reasons(self) -> list[tuple[Reason, ...]]:
        """Every list as Reason objects, in list order: for materializing many placements
        (the distinct reasons are made in one pass over plain Python lists)."""
        todo = np.setdiff1d(np.unique(self.lists), [-1]).tolist()
        todo = [k for k in todo if k not in self._reasons]
        if todo:
            ks = np.asarray(todo, dtype=np.int64)
            for k, fields in zip(
                todo,
                zip(
                    self.signal[ks].tolist(),
                    self.t[ks].tolist(),
                    self.raw[ks].tolist(),
                    signal_boxes(self.box[ks]),
                    self.aux_a[ks].tolist(),
                    self.aux_b[ks].tolist(),
                    strict=True,
                ),
                strict=True,
            ):
                self._reasons[k] = reason_for(self.index, *fields)
        return [self.reasons(j) for j in range(len(self))]
