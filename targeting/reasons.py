"""Reasons: which signal held, where and how strongly, as ``Reason`` objects.

``reason_for`` names one signal hit in the rules' words (a prompt and its threshold, an IAB
category and its rank, a brand and the finders that saw it (matcher, detector), a face count, a safety class); ``placement_reasons`` picks, per
kept segment and per clause that held, the ``MAX_REASONS_PER_CLAUSE`` strongest keyframes, as a
vectorized join of hits x campaigns using the signal x matching keyframes.
"""

from __future__ import annotations

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.segments import Segments
from targeting.signals import FrameSignals, Hits, Matches, logo_source_names
from targeting.types import Reason
from vision.types import Box

MAX_REASONS_PER_CLAUSE = 2
"""A placement lists, per clause that held, at most this many keyframes (the strongest)."""


def signal_box(sig_box: np.ndarray) -> Box | None:
    if np.isnan(sig_box).any():
        return None
    return (float(sig_box[0]), float(sig_box[1]), float(sig_box[2]), float(sig_box[3]))


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


def placement_reasons(
    segs: Segments, m: Matches, hits: Hits, index: ConceptIndex, times: np.ndarray, n: int
) -> list[tuple[Reason, ...]]:
    """Per kept segment, per clause that held on its matching keyframes (rules order), the
    ``MAX_REASONS_PER_CLAUSE`` strongest keyframes: a join of hits x clause users x matches."""
    mem = index.clause_members
    count = mem.ptr[hits.signal + 1] - mem.ptr[hits.signal]
    h = np.repeat(np.arange(hits.signal.size), count)  # one entry per (hit, campaign using it)
    within = np.arange(h.size) - np.repeat(np.cumsum(count) - count, count)
    member = mem.ptr[hits.signal[h]] + within
    key = mem.campaign[member].astype(np.int64) * n + hits.row[h]
    pos = np.minimum(np.searchsorted(m.key, key), m.key.size - 1)
    seg = np.where(m.key[pos] == key, segs.of_match[pos], -1)
    ok = seg >= 0
    h, seg, clause = h[ok], seg[ok], mem.position[member[ok]]
    order = np.lexsort((h, clause, seg))  # hits are strongest-first within a signal
    h, seg, clause = h[order], seg[order], clause[order]
    group = np.concatenate(([True], (seg[1:] != seg[:-1]) | (clause[1:] != clause[:-1])))
    starts = np.flatnonzero(group)
    rank = np.arange(h.size) - np.repeat(starts, np.diff(np.concatenate((starts, [h.size]))))
    keep = rank < MAX_REASONS_PER_CLAUSE
    return _grouped_reasons(h[keep], seg[keep], segs.campaign.size, hits, index, times)


def _grouped_reasons(
    h: np.ndarray, seg: np.ndarray, n_segs: int, hits: Hits, index: ConceptIndex, times: np.ndarray
) -> list[tuple[Reason, ...]]:
    """Reasons of hits ``h`` grouped into one tuple per segment (``seg`` sorted, in 0..n_segs-1).

    One ``Reason`` per distinct hit, shared by every placement that names it (a face seen on a
    keyframe is the reason of hundreds of face campaigns); the tuples are slices of one list."""
    distinct, which = np.unique(h, return_inverse=True)
    made = [
        reason_for(
            index,
            int(hits.signal[hi]),
            float(times[hits.row[hi]]),
            float(hits.raw[hi]),
            signal_box(hits.box[hi]),
            int(hits.aux_a[hi]),
            int(hits.aux_b[hi]),
        )
        for hi in distinct.tolist()
    ]
    flat = [made[j] for j in which.tolist()]
    bounds = np.searchsorted(seg, np.arange(n_segs + 1)).tolist()
    return [tuple(flat[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
