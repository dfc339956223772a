"""FrameFacts timeline x campaigns -> explained, ranked Placements.

Per keyframe and campaign (vectorized over campaigns, see ``targeting.concept_index``):

- **target**: every ``all`` clause holds and, if ``any`` is non-empty, at least one ``any`` clause;
- **blocked**: any exclusion hits: a brand-safety class flagged at or above its threshold
  (``vision.safety_classes.SAFETY_BY_NAME``), an excluded concept at or above its cosine
  threshold, an excluded brand's logo. A keyframe without a CLIP embedding cannot be checked
  against excluded concepts, so campaigns that have some are blocked there (fail closed); target
  concept and IAB clauses simply do not hold on it.
- a keyframe **matches** a campaign when targeted and not blocked.

Clause semantics: a ``logo`` clause holds for a ``LogoMatch`` of its brand with score >=
``min_score`` and box area >= ``min_area``; a ``face`` clause when the count of faces with score
>= ``min_score`` and area >= ``min_area`` lies in ``[min_count, max_count]``; an ``iab`` clause
when a listed id or a descendant is among the frame's ``top_k`` IAB categories (and reaches
``threshold`` if given); a ``concept`` clause when the cosine reaches its threshold.

**Evidence** of a clause that holds, in 0.5..1 (0 when it does not hold), non-decreasing in the
underlying score: ``0.5 + 0.5 * min(1, (s - threshold) / span)``, where ``s`` is the cosine
(concept, ``span = min(CONCEPT_EVIDENCE_SPAN, 1 - threshold)``, since CLIP cosines live in a
narrow band), the logo score or the best counted face score (``span = 1 - min_score``).
An IAB clause uses its rank: ``0.5 + 0.5 * (top_k - rank) / top_k`` (rank 0 = the frame's best
category). A keyframe's evidence for a campaign is the strongest evidence among its clauses that
hold; a placement's **score** is the mean of that over the segment's matching keyframes.

**Segments** (times in seconds): matching keyframes, in time order, join one segment while the
gap between consecutive ones is <= ``campaign.gap_s`` and no blocked keyframe lies between them
(an exclusion splits a segment; the blocked keyframes never get a placement). A segment runs
from its first matching keyframe's ``t`` to its last one's ``t`` plus one sampling step (the
median keyframe spacing), but never past the next keyframe's ``t`` (after a cut the picture is
another one). Segments shorter than ``min_duration_s`` are dropped. Duration rules apply to
videos: a timeline of one keyframe is a still image, its placements have ``start_s == end_s ==
t`` and are kept whatever ``min_duration_s`` says.

**Ranking**: all placements for the media compete; ``rank`` 1..n by ``score * bid_cpm``
descending, ties broken by campaign id, then start time. The result is in rank order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.rules_schema import Campaign
from targeting.types import Placement, Reason
from vision.types import Box, FrameFacts, box_area

CONCEPT_EVIDENCE_SPAN = 0.10
"""Cosine above a concept's threshold at which its evidence saturates at 1 (CLIP cosines of
related image/text pairs rarely sit more than ~0.1 above a sensible threshold)."""
MAX_REASONS_PER_CLAUSE = 2
"""A placement lists, per clause that held, at most this many keyframes (the strongest)."""
MATCH_FRAME_CHUNK = 128
"""Keyframes evaluated together: bounds the dense intermediates however long the video is.
Per chunk they take about 21 bytes per keyframe x signal plus ~10 per keyframe x clause entry:
~80 MB at 30,000 signals, 30,000 campaigns."""
MAX_TIMELINE_KEYFRAMES = 100_000
"""Longest timeline accepted (a 4 h video at 0.5 s is 28,800 keyframes plus cuts)."""
MAX_EXPLAIN_DECISIONS = 500_000
"""``explain_frames`` builds one object per keyframe x campaign: it is for a few campaigns."""
EVIDENCE_RESOLUTION = 1e-5
"""Evidence values closer than this are equal when choosing which keyframes a reason names."""
TIME_EPS = 1e-9
"""Slack (seconds) in time comparisons, so 1.0 - 0.5 <= 0.5 holds despite float noise."""


@dataclass(frozen=True)
class FrameDecision:
    """Why one keyframe did or did not match one campaign (for ``--explain``).

    ``matched`` lists the clauses that held (kind/what/score/box as in placements),
    ``blocking`` the exclusions that hit (kind ``exclusion``; ``what`` is the safety class, or
    ``concept:<prompt>``, ``logo:<brand>``). ``evidence`` is the keyframe's evidence (0..1, 0 when
    the target does not hold).
    """

    media: str
    t: float
    campaign: str
    target: bool
    blocked: bool
    evidence: float
    matched: tuple[Reason, ...]
    blocking: tuple[Reason, ...]

    @property
    def placed(self) -> bool:
        """The keyframe counts for a placement: targeted and not blocked."""
        return self.target and not self.blocked


# ----------------------------------------------------------------------------------- signals


@dataclass(frozen=True)
class _Signals:
    """Dense signals for n keyframes: ``hit`` (n, T) bool, ``ev`` (n, T) float32 evidence
    (0 where no hit), ``raw`` (n, T) float64 underlying score, ``box`` (n, T - off_logo, 4)
    float64 (NaN: no box) for logo/face/safety signals, ``aux_a``/``aux_b`` (n, T) int32 extras
    (IAB: vocabulary row / rank; face: count), ``has_emb`` (n,) bool."""

    hit: np.ndarray
    ev: np.ndarray
    raw: np.ndarray
    box: np.ndarray
    aux_a: np.ndarray
    aux_b: np.ndarray
    has_emb: np.ndarray


def _evidence(raw: np.ndarray, threshold: np.ndarray, span: np.ndarray) -> np.ndarray:
    margin = (raw - threshold) / np.maximum(span, 1e-6)
    return (0.5 + 0.5 * np.clip(margin, 0.0, 1.0)).astype(np.float32)


def _signals(frames: Sequence[FrameFacts], index: ConceptIndex) -> _Signals:
    n = len(frames)
    o = index.offsets
    t_all = o["end"]
    hit = np.zeros((n, t_all), dtype=bool)
    ev = np.zeros((n, t_all), dtype=np.float32)
    raw = np.zeros((n, t_all), dtype=np.float64)  # float64: reasons repeat detector scores exactly
    box = np.full((n, t_all - o["logo"], 4), np.nan, dtype=np.float64)
    aux_a = np.full((n, t_all), -1, dtype=np.int32)
    aux_b = np.full((n, t_all), -1, dtype=np.int32)

    has_emb = np.asarray([f.embedding is not None for f in frames], dtype=bool)
    emb = np.zeros((n, index.dim), dtype=np.float32)
    for i, f in enumerate(frames):
        if f.embedding is not None:
            if f.embedding.shape != (index.dim,):
                index.check_embeddings(f.embedding[None, :])  # raises ModelError, says why
            emb[i] = f.embedding

    # concepts: one (n, D) x (D, K) product for every campaign
    k = o["iab"]
    if k:
        s = index.scores(emb)
        h = (s >= index.thresholds) & has_emb[:, None]
        span = np.minimum(CONCEPT_EVIDENCE_SPAN, 1.0 - index.thresholds)
        raw[:, :k] = s
        hit[:, :k] = h
        ev[:, :k] = np.where(h, _evidence(s, index.thresholds, span), 0.0)

    # IAB clauses: one (n, D) x (D, M) product and the top-k, vectorized over clauses
    q0, q1 = o["iab"], o["logo"]
    if q1 > q0 and index.iab is not None:
        ih = index.iab_hits(emb)
        h = ih.hit & has_emb[:, None]
        top_k = index.iab.clause_top_k[None, :].astype(np.float32)
        hit[:, q0:q1] = h
        raw[:, q0:q1] = ih.score
        ev[:, q0:q1] = np.where(h, 0.5 + 0.5 * (top_k - ih.rank) / top_k, 0.0)
        aux_a[:, q0:q1] = ih.category
        aux_b[:, q0:q1] = ih.rank

    _logo_signals(frames, index, hit, ev, raw, box)
    _face_signals(frames, index, hit, ev, raw, box, aux_a)
    _safety_signals(frames, index, hit, ev, raw, box)
    return _Signals(hit, ev, raw, box, aux_a, aux_b, has_emb)


def _logo_signals(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    hit: np.ndarray,
    ev: np.ndarray,
    raw: np.ndarray,
    box: np.ndarray,
) -> None:
    """Best qualifying LogoMatch per (keyframe, logo key): a loop over the (few) matches in the
    frames, vectorized over keys; matches are visited weakest first so the strongest wins."""
    o = index.offsets
    g0, g1 = o["logo"], o["face"]
    if g1 == g0:
        return
    keys = index.logo_keys
    brand_code = {b: i for i, b in enumerate(sorted({kk.brand for kk in keys}))}
    key_brand = np.asarray([brand_code[kk.brand] for kk in keys])
    key_score = np.asarray([kk.min_score for kk in keys], dtype=np.float32)
    key_area = np.asarray([kk.min_area for kk in keys], dtype=np.float32)
    found = [
        (lm.score, i, lm) for i, f in enumerate(frames) for lm in f.logos if lm.brand in brand_code
    ]
    found.sort(key=lambda x: (x[0], x[1]))
    for score, i, lm in found:
        qual = (
            (key_brand == brand_code[lm.brand])
            & (score >= key_score)
            & (box_area(lm.box) >= key_area)
        )
        cols = np.flatnonzero(qual)
        if cols.size:
            raw[i, g0 + cols] = score
            hit[i, g0 + cols] = True
            box[i, cols] = lm.box
    h = hit[:, g0:g1]
    ev[:, g0:g1] = np.where(h, _evidence(raw[:, g0:g1], key_score, 1.0 - key_score), 0.0)


def _face_signals(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    hit: np.ndarray,
    ev: np.ndarray,
    raw: np.ndarray,
    box: np.ndarray,
    count_out: np.ndarray,
) -> None:
    """Count qualifying faces per (keyframe, face key); raw/box are the strongest counted face."""
    o = index.offsets
    f0, f1 = o["face"], o["safety"]
    if f1 == f0:
        return
    keys = index.face_keys
    min_score = np.asarray([kk.min_score for kk in keys], dtype=np.float32)
    min_area = np.asarray([kk.min_area for kk in keys], dtype=np.float32)
    min_count = np.asarray([kk.min_count for kk in keys])
    max_count = np.asarray([kk.max_count or np.iinfo(np.int32).max for kk in keys])
    count = np.zeros((len(frames), len(keys)), dtype=np.int32)
    faces = [
        (d.score, i, d) for i, f in enumerate(frames) for d in f.detections if d.kind == "face"
    ]
    faces.sort(key=lambda x: (x[0], x[1]))
    b0 = f0 - o["logo"]
    for score, i, d in faces:
        cols = np.flatnonzero((score >= min_score) & (d.area >= min_area))
        if cols.size:
            count[i, cols] += 1
            raw[i, f0 + cols] = score
            box[i, b0 + cols] = d.box
    h = (count >= min_count) & (count <= max_count)
    hit[:, f0:f1] = h
    count_out[:, f0:f1] = count
    ev[:, f0:f1] = np.where(h, _evidence(raw[:, f0:f1], min_score, 1.0 - min_score), 0.0)


def _safety_signals(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    hit: np.ndarray,
    ev: np.ndarray,
    raw: np.ndarray,
    box: np.ndarray,
) -> None:
    """Strongest flag per (keyframe, safety class); it blocks at or above the class threshold."""
    o = index.offsets
    s0, s1 = o["safety"], o["end"]
    if s1 == s0:
        return
    col = {kk.name: j for j, kk in enumerate(index.safety_keys)}
    thr = np.asarray([kk.threshold for kk in index.safety_keys], dtype=np.float32)
    flags = [
        (fl.score, i, fl) for i, f in enumerate(frames) for fl in f.safety if fl.category in col
    ]
    flags.sort(key=lambda x: (x[0], x[1]))
    b0 = s0 - o["logo"]
    for score, i, fl in flags:
        j = col[fl.category]
        raw[i, s0 + j] = score
        box[i, b0 + j] = fl.box if fl.box is not None else (np.nan,) * 4
    h = raw[:, s0:s1] >= thr
    hit[:, s0:s1] = h
    ev[:, s0:s1] = np.where(h, raw[:, s0:s1], 0.0)


# ----------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class _Decisions:
    """(n, C) per keyframe x campaign: ``target`` bool, ``blocked`` bool, ``evidence`` float32."""

    target: np.ndarray
    blocked: np.ndarray
    evidence: np.ndarray


def _decide(sig: _Signals, index: ConceptIndex) -> _Decisions:
    """All campaigns at once: each part is a gather of signal columns and one ``reduceat``."""
    n = sig.hit.shape[0]
    c = len(index.plans)
    target = np.ones((n, c), dtype=bool)
    if index.all_flat:
        fl = index.all_flat
        target[:, fl.camps] = np.logical_and.reduceat(sig.hit[:, fl.flat], fl.starts, axis=1)
    if index.any_flat:
        fl = index.any_flat
        target[:, fl.camps] &= np.logical_or.reduceat(sig.hit[:, fl.flat], fl.starts, axis=1)
    fl = index.clause_flat
    evidence = np.zeros((n, c), dtype=np.float32)
    if fl:
        evidence[:, fl.camps] = np.maximum.reduceat(sig.ev[:, fl.flat], fl.starts, axis=1)
    evidence[~target] = 0.0
    blocked = np.zeros((n, c), dtype=bool)
    if index.exclude_flat:
        fl = index.exclude_flat
        blocked[:, fl.camps] = np.logical_or.reduceat(sig.hit[:, fl.flat], fl.starts, axis=1)
    blocked |= (~sig.has_emb)[:, None] & index.exclude_concepts[None, :]
    return _Decisions(target, blocked, evidence)


# ----------------------------------------------------------------------------------- reasons


def _box(sig_box: np.ndarray) -> Box | None:
    if np.isnan(sig_box).any():
        return None
    return (float(sig_box[0]), float(sig_box[1]), float(sig_box[2]), float(sig_box[3]))


def _reason(
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
        if exclusion:
            return Reason("exclusion", f"logo:{lk.brand}", raw, t, box, detail="excluded logo")
        return Reason("logo", lk.brand, raw, t, box, detail=f"score >= {lk.min_score:g}")
    if kind == "face":
        fk = index.face_keys[s - o["face"]]
        limit = f"{fk.min_count}..{fk.max_count}" if fk.max_count else f">= {fk.min_count}"
        what = f"{aux_a} face" + ("s" if aux_a != 1 else "")
        detail = f"count {limit}, area >= {fk.min_area:g}, score >= {fk.min_score:g}"
        return Reason("face", what, raw, t, box, detail=detail)
    sk = index.safety_keys[s - o["safety"]]
    return Reason("exclusion", sk.name, raw, t, box, detail=f"safety score >= {sk.threshold:g}")


def _reason_at(
    index: ConceptIndex, sig: _Signals, i: int, s: int, t: float, *, exclusion: bool = False
) -> Reason:
    """The Reason for signal ``s`` at row ``i`` of dense signals ``sig`` (keyframe time ``t``)."""
    off = index.offsets["logo"]
    b = _box(sig.box[i, s - off]) if s >= off else None
    return _reason(
        index,
        s,
        t,
        float(sig.raw[i, s]),
        b,
        int(sig.aux_a[i, s]),
        int(sig.aux_b[i, s]),
        exclusion=exclusion,
    )


# ----------------------------------------------------------------------------------- timeline


def _prepare(
    timeline: Sequence[FrameFacts], media: str | None
) -> tuple[list[FrameFacts], str, np.ndarray]:
    if len(timeline) > MAX_TIMELINE_KEYFRAMES:
        raise ValueError(
            f"timeline has {len(timeline)} keyframes, more than MAX_TIMELINE_KEYFRAMES="
            f"{MAX_TIMELINE_KEYFRAMES}: split the media"
        )
    frames = sorted(timeline, key=lambda f: f.t)
    ids = {f.media_id for f in frames}
    if len(ids) > 1 and media is None:
        raise ValueError(
            f"timeline mixes media {sorted(ids)[:3]}: match one media at a time (or pass media=)"
        )
    name = media if media is not None else (frames[0].media_id if frames else "")
    return frames, name, np.asarray([f.t for f in frames], dtype=np.float64)


def estimate_step(times: np.ndarray) -> float:
    """The sampling step of a timeline, in seconds: the median positive keyframe spacing.

    0.0 for a single keyframe (a still image) or when every keyframe has the same time.
    """
    d = np.diff(np.sort(np.asarray(times, dtype=np.float64)))
    d = d[d > TIME_EPS]
    return float(np.median(d)) if d.size else 0.0


def _selected(campaigns: Sequence[Campaign], index: ConceptIndex, today: date | None) -> np.ndarray:
    """(C,) bool over ``index.plans``: the given campaigns that fly on ``today``."""
    active = np.zeros(len(index.plans), dtype=bool)
    for c in campaigns:
        pos = index.position(c)
        if today is None or c.active_on(today):
            active[pos] = True
    return active


def match(
    timeline: Sequence[FrameFacts],
    campaigns: Sequence[Campaign],
    index: ConceptIndex,
    *,
    today: date,
    media: str | None = None,
) -> list[Placement]:
    """Placements of ``campaigns`` (flying on ``today``) in one media's keyframe timeline.

    ``timeline`` is the media's FrameFacts in any order (sorted by ``t`` here); ``index`` must be
    built from (a superset of) these campaigns. ``media`` names the media in the placements
    (default: the keyframes' ``media_id``). Returns placements in rank order (see module doc);
    an empty timeline, or no campaign flying, gives ``[]``.

    Apart from building the Placement objects, nothing here loops over campaigns in Python:
    decisions are (keyframes x campaigns) arrays, segments are found on the sparse list of
    matching (campaign, keyframe) pairs, and reasons are a join of signal hits with it.
    """
    frames, media_name, times = _prepare(timeline, media)
    active = _selected(campaigns, index, today)
    if not frames or not active.any():
        return []
    n = len(frames)
    matches, blocked_keys, hits = _scan(frames, index, active)
    if matches.campaign.size == 0:
        return []
    segs = _segment(matches, blocked_keys, times, index)
    if segs.campaign.size == 0:
        return []
    reasons = _reasons(segs, matches, hits, index, times, n)
    order = np.lexsort((segs.start, segs.campaign_id_rank, -segs.score * segs.bid))
    return [
        Placement(
            campaign=index.plans[segs.campaign[i]].campaign.id,
            media=media_name,
            start_s=float(segs.start[i]),
            end_s=float(segs.end[i]),
            score=float(segs.score[i]),
            reasons=reasons[i],
            advertiser=index.plans[segs.campaign[i]].campaign.advertiser,
            bid_cpm=float(segs.bid[i]),
            rank=rank,
        )
        for rank, i in enumerate(order.tolist(), start=1)
    ]


@dataclass(frozen=True)
class _Matches:
    """Matching (campaign, keyframe) pairs sorted by campaign then keyframe: ``campaign``,
    ``row`` (keyframe index in time order), ``key = campaign * n + row``, ``evidence``."""

    campaign: np.ndarray
    row: np.ndarray
    key: np.ndarray
    evidence: np.ndarray


@dataclass(frozen=True)
class _Hits:
    """Hits of target signals sorted by signal, strongest first (then earliest): ``signal``,
    ``row``, ``raw``, ``box`` (H, 4) NaN when none, ``aux_a``, ``aux_b`` (see ``_Signals``)."""

    signal: np.ndarray
    row: np.ndarray
    raw: np.ndarray
    box: np.ndarray
    aux_a: np.ndarray
    aux_b: np.ndarray


def _scan(
    frames: Sequence[FrameFacts], index: ConceptIndex, active: np.ndarray
) -> tuple[_Matches, np.ndarray, _Hits]:
    """Evaluate the timeline in chunks of keyframes; keep only sparse results."""
    n = len(frames)
    o = index.offsets
    target_sigs = index.target_signals
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("mc", "mr", "me", "bk", "hs", "hr", "he", "hraw", "hbox", "ha", "hb")
    }
    for lo in range(0, n, MATCH_FRAME_CHUNK):
        chunk = frames[lo : lo + MATCH_FRAME_CHUNK]
        sig = _signals(chunk, index)
        dec = _decide(sig, index)
        ci, fi = np.nonzero((dec.target & ~dec.blocked & active[None, :]).T)  # campaign-major
        parts["mc"].append(ci)
        parts["mr"].append(fi + lo)
        parts["me"].append(dec.evidence[fi, ci])
        ci, fi = np.nonzero((dec.blocked & active[None, :]).T)
        parts["bk"].append(ci.astype(np.int64) * n + fi + lo)
        r, j = np.nonzero(sig.hit[:, target_sigs])
        s = target_sigs[j]
        parts["hs"].append(s)
        parts["hr"].append(r + lo)
        parts["he"].append(sig.ev[r, s])
        parts["hraw"].append(sig.raw[r, s])
        bi = np.maximum(s - o["logo"], 0)
        bx = sig.box[r, bi] if sig.box.shape[1] else np.full((r.size, 4), np.nan)
        parts["hbox"].append(np.where((s >= o["logo"])[:, None], bx, np.nan))
        parts["ha"].append(sig.aux_a[r, s])
        parts["hb"].append(sig.aux_b[r, s])
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    mc, mr = cat["mc"].astype(np.int64), cat["mr"].astype(np.int64)
    order = np.lexsort((mr, mc))  # chunks come in frame order: re-sort campaign-major
    mc, mr = mc[order], mr[order]
    matches = _Matches(mc, mr, mc * n + mr, cat["me"][order].astype(np.float64))
    # Quantized, so float noise of the BLAS product (which varies with the matrix shape) cannot
    # reorder keyframes whose evidence is equal for any practical purpose.
    strength = np.round(cat["he"].astype(np.float64) / EVIDENCE_RESOLUTION).astype(np.int64)
    h = np.lexsort((cat["hr"], -strength, cat["hs"]))
    hits = _Hits(
        cat["hs"][h],
        cat["hr"][h],
        cat["hraw"][h],
        cat["hbox"][h],
        cat["ha"][h],
        cat["hb"][h],
    )
    return matches, np.sort(cat["bk"]), hits


@dataclass(frozen=True)
class _Segments:
    """Kept segments: ``campaign`` (row in plans), ``first``/``last`` (positions in _Matches),
    ``start``/``end`` seconds, ``score`` (mean evidence), ``bid``, ``campaign_id_rank`` (order
    of the campaign id among all ids, for tie-breaking without Python string sorting here)."""

    campaign: np.ndarray
    first: np.ndarray
    last: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    bid: np.ndarray
    campaign_id_rank: np.ndarray
    of_match: np.ndarray  # (M,) segment number of each match, -1 where its segment was dropped


def _segment(
    m: _Matches, blocked_keys: np.ndarray, times: np.ndarray, index: ConceptIndex
) -> _Segments:
    """Split each campaign's matching keyframes into segments (rules in the module doc)."""
    n = times.size
    tab = index.campaign_table
    same = m.campaign[1:] == m.campaign[:-1]
    gap_ok = np.diff(times[m.row]) <= tab.gap_s[m.campaign[1:]] + TIME_EPS
    blocked_between = np.searchsorted(blocked_keys, m.key[1:], "left") > np.searchsorted(
        blocked_keys, m.key[:-1], "right"
    )
    new = np.concatenate(([True], ~(same & gap_ok & ~blocked_between)))
    first = np.flatnonzero(new)
    last = np.concatenate((first[1:] - 1, [m.campaign.size - 1]))
    camp = m.campaign[first]
    start = times[m.row[first]]
    if n == 1:  # a still image: placements are instants, duration rules do not apply
        end = start.copy()
        keep = np.ones(first.size, dtype=bool)
    else:
        last_row = m.row[last]
        end = times[last_row] + estimate_step(times)
        nxt = last_row + 1 < n
        end[nxt] = np.minimum(end[nxt], times[last_row[nxt] + 1])
        keep = end - start >= tab.min_duration_s[camp] - TIME_EPS
    score = np.add.reduceat(m.evidence, first) / (last - first + 1)
    seg_no = np.cumsum(new) - 1
    renumber = np.where(keep, np.cumsum(keep) - 1, -1)
    return _Segments(
        campaign=camp[keep],
        first=first[keep],
        last=last[keep],
        start=start[keep],
        end=end[keep],
        score=score[keep],
        bid=tab.bid_cpm[camp[keep]],
        campaign_id_rank=tab.id_rank[camp[keep]],
        of_match=renumber[seg_no],
    )


def _reasons(
    segs: _Segments, m: _Matches, hits: _Hits, index: ConceptIndex, times: np.ndarray, n: int
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
    h, seg = h[keep], seg[keep]
    cache: dict[int, Reason] = {}
    out: list[list[Reason]] = [[] for _ in range(segs.campaign.size)]
    for hi, si in zip(h.tolist(), seg.tolist(), strict=True):
        r = cache.get(hi)
        if r is None:
            r = cache[hi] = _reason(
                index,
                int(hits.signal[hi]),
                float(times[hits.row[hi]]),
                float(hits.raw[hi]),
                _box(hits.box[hi]),
                int(hits.aux_a[hi]),
                int(hits.aux_b[hi]),
            )
        out[si].append(r)
    return [tuple(r) for r in out]


def explain_frames(
    timeline: Sequence[FrameFacts],
    campaigns: Sequence[Campaign],
    index: ConceptIndex,
    *,
    today: date | None = None,
) -> list[FrameDecision]:
    """One decision per keyframe (time order) per campaign (given order), for ``--explain``.

    ``today`` (optional) leaves out campaigns outside their flight. Costs one object per pair,
    so it refuses more than ``MAX_EXPLAIN_DECISIONS`` pairs: explain a few campaigns at a time.
    """
    frames, media_name, times = _prepare(timeline, None)
    chosen = [c for c in campaigns if today is None or c.active_on(today)]
    pos = [index.position(c) for c in chosen]
    if len(frames) * len(pos) > MAX_EXPLAIN_DECISIONS:
        raise ValueError(
            f"explaining {len(frames)} keyframes x {len(pos)} campaigns exceeds "
            f"MAX_EXPLAIN_DECISIONS={MAX_EXPLAIN_DECISIONS}: pass fewer campaigns"
        )
    if not frames or not pos:
        return []
    out: list[FrameDecision] = []
    for lo in range(0, len(frames), MATCH_FRAME_CHUNK):
        chunk = frames[lo : lo + MATCH_FRAME_CHUNK]
        sig = _signals(chunk, index)
        dec = _decide(sig, index)
        for i, f in enumerate(chunk):
            t = float(times[lo + i])

            for ci in pos:
                plan = index.plans[ci]
                matched = tuple(
                    _reason_at(index, sig, i, s, t)
                    for s in dict.fromkeys(plan.clause_signals)
                    if sig.hit[i, s]
                )
                blocking = [
                    _reason_at(index, sig, i, s, t, exclusion=True)
                    for s in plan.exclude_signals
                    if sig.hit[i, s]
                ]
                if plan.exclude_concepts and not sig.has_emb[i]:
                    blocking.append(
                        Reason(
                            "exclusion",
                            "concept:unchecked",
                            0.0,
                            t,
                            detail="no CLIP embedding: excluded concepts cannot be checked, "
                            "blocked to be safe",
                        )
                    )
                out.append(
                    FrameDecision(
                        media=f.media_id if media_name == "" else media_name,
                        t=t,
                        campaign=plan.campaign.id,
                        target=bool(dec.target[i, ci]),
                        blocked=bool(dec.blocked[i, ci]),
                        evidence=float(dec.evidence[i, ci]),
                        matched=matched,
                        blocking=tuple(blocking),
                    )
                )
    return out
