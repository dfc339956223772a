"""Per-keyframe signals and decisions: FrameFacts x compiled campaigns -> dense, then sparse.

``frame_signals`` answers every signal of a ``ConceptIndex`` (concept cosines, IAB ranks, logo,
face and safety conditions) for a chunk of keyframes as dense (keyframes x signals) arrays, with
the evidence of each hit (rules in ``targeting.match``). ``decide`` reduces them to per-campaign
``target``/``blocked`` with one reduction per part and group of campaigns
(``index_layout.SignalLists``), ``evidence`` gives the evidence of chosen (keyframe, campaign)
pairs. ``scan_timeline`` runs them
over a whole timeline ``MATCH_FRAME_CHUNK`` keyframes at a time and keeps only sparse results:
the matching (campaign, keyframe) pairs, the blocked ones, and the hits of target signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.safety_policy import (
    DEFAULT_SAFETY_POLICY,
    SafetyPolicy,
    SafetyVerdict,
    detector_verdicts,
    face_counts,
    second_opinion,
)
from targeting.text_match import canonical_words, phrase_edits
from vision.safety_classes import SAFETY_BY_NAME
from vision.types import LOGO_SOURCE_NAMES, FrameFacts, LogoMatch, box_area

Verdicts = dict[str, list[SafetyVerdict | None]]
"""Per detector safety class named by the index: one verdict (or None) per keyframe."""


def safety_verdicts(
    frames: Sequence[FrameFacts], index: ConceptIndex, policy: SafetyPolicy = DEFAULT_SAFETY_POLICY
) -> Verdicts:
    """``targeting.safety_policy`` verdicts for every detector class the index excludes, over the
    whole timeline (``frames`` in time order): k-of-n needs the neighbours of chunk edges too."""
    return {
        kk.name: detector_verdicts(frames, kk.name, kk.threshold, policy)
        for kk in index.safety_keys
        if kk.name in SAFETY_BY_NAME and SAFETY_BY_NAME[kk.name].source == "detector"
    }


CONCEPT_EVIDENCE_SPAN = 0.10
"""Cosine above a concept's threshold at which its evidence saturates at 1 (CLIP cosines of
related image/text pairs rarely sit more than ~0.1 above a sensible threshold)."""
MATCH_FRAME_CHUNK = 128
"""Keyframes evaluated together: bounds the dense intermediates however long the video is.
Per chunk they take about 26 bytes per keyframe x signal (``decide`` adds signal-major copies
of ``hit`` and ``ev``) plus ~10 per keyframe x clause entry: ~100 MB at 30,000 signals,
30,000 campaigns."""
EVIDENCE_RESOLUTION = 1e-5
"""Evidence values closer than this are equal when choosing which keyframes a reason names."""


@dataclass(frozen=True)
class FrameSignals:
    """Dense signals for n keyframes: ``hit`` (n, T) bool, ``ev`` (n, T) float32 evidence
    (0 where no hit), ``raw`` (n, T) float64 underlying score, ``box`` (n, T - off_logo, 4)
    float64 (NaN: no box) for logo/face/text/safety signals, ``aux_a``/``aux_b`` (n, T) int32
    extras (IAB: vocabulary row / rank; logo: ``logo_source_mask``; face: count; text:
    phrase / edits), ``has_emb`` (n,)
    bool."""

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


def frame_signals(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
    verdicts: Verdicts | None = None,
) -> FrameSignals:
    """Dense signals of ``frames``; ``verdicts`` (this chunk's slice of ``safety_verdicts``)
    decide detector safety classes, computed from ``frames`` alone when None."""
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
        raw[:, :k] = s
        hit[:, :k] = h
        # evidence where a concept holds only: a few of thousands of columns per keyframe
        r, j = np.nonzero(h)
        thr = index.thresholds[j]
        span = np.minimum(CONCEPT_EVIDENCE_SPAN, 1.0 - thr)
        ev[r, j] = _evidence(s[r, j], thr, span)

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

    _logo_signals(frames, index, hit, ev, raw, box, aux_a)
    _face_signals(frames, index, hit, ev, raw, box, aux_a, policy)
    _text_signals(frames, index, hit, ev, raw, box, aux_a, aux_b)
    if verdicts is None:
        verdicts = safety_verdicts(frames, index, policy)
    _safety_signals(frames, index, hit, ev, raw, box, verdicts)
    return FrameSignals(hit, ev, raw, box, aux_a, aux_b, has_emb)


LOGO_SOURCE_BITS: dict[str, int] = {"features": 1, "detector": 2, "clip": 4}
"""A LogoMatch method -> its bit in a logo signal's ``aux_a`` (which finders saw it)."""


def logo_source_mask(lm: LogoMatch) -> int:
    """The finders that saw ``lm`` (its ``sources`` when fused, else its ``method``) as bits."""
    methods = getattr(lm, "sources", ()) or (lm.method,)
    mask = 0
    for m in methods:
        mask |= LOGO_SOURCE_BITS[m]
    return mask


def logo_source_names(mask: int) -> tuple[str, ...]:
    """``logo_source_mask`` bits -> finder names for reasons: ``matcher`` (the reference
    matcher, method ``features``), ``detector``, ``clip``."""
    return tuple(
        LOGO_SOURCE_NAMES[m] for m, bit in LOGO_SOURCE_BITS.items() if mask >= 0 and mask & bit
    )


def _logo_signals(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    hit: np.ndarray,
    ev: np.ndarray,
    raw: np.ndarray,
    box: np.ndarray,
    sources_out: np.ndarray,
) -> None:
    """Best qualifying LogoMatch per (keyframe, logo key): a loop over the (few) matches in the
    frames, vectorized over keys; matches are visited weakest first so the strongest wins.
    ``sources_out`` gets the winner's finders as ``logo_source_mask`` bits."""
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
            sources_out[i, g0 + cols] = logo_source_mask(lm)
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
    policy: SafetyPolicy,
) -> None:
    """Count qualifying faces per (keyframe, face key); raw/box are the strongest counted face.
    A face the second opinion overrules (``safety_policy.face_counts``) is not counted."""
    o = index.offsets
    f0, f1 = o["face"], o["text"]
    if f1 == f0:
        return
    keys = index.face_keys
    min_score = np.asarray([kk.min_score for kk in keys], dtype=np.float32)
    min_area = np.asarray([kk.min_area for kk in keys], dtype=np.float32)
    min_count = np.asarray([kk.min_count for kk in keys])
    max_count = np.asarray([kk.max_count or np.iinfo(np.int32).max for kk in keys])
    count = np.zeros((len(frames), len(keys)), dtype=np.int32)
    opinions = [second_opinion(f) for f in frames]
    faces = [
        (d.score, i, d)
        for i, f in enumerate(frames)
        for d in f.detections
        if d.kind == "face" and face_counts(d, opinions[i], policy)
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


def _text_signals(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    hit: np.ndarray,
    ev: np.ndarray,
    raw: np.ndarray,
    box: np.ndarray,
    phrase_out: np.ndarray,
    edits_out: np.ndarray,
) -> None:
    """Best-scoring OCR read per (keyframe, text key) that reads one of its phrases
    (``targeting.text_match``); raw/box are that read's, ``phrase_out`` the phrase's position in
    the key, ``edits_out`` the character edits it took. A loop over the (few) reads of the frames
    and the distinct phrases; each read is canonicalized once."""
    o = index.offsets
    x0, x1 = o["text"], o["safety"]
    if x1 == x0:
        return
    keys = index.text_keys
    min_score = np.asarray([kk.min_score for kk in keys], dtype=np.float32)
    phrases = list(dict.fromkeys(w for kk in keys for w in kk.words))
    users: dict[tuple[str, ...], list[tuple[int, int]]] = {w: [] for w in phrases}
    for j, kk in enumerate(keys):
        for pi, w in enumerate(kk.words):
            users[w].append((j, pi))
    b0 = x0 - o["logo"]
    for i, f in enumerate(frames):
        for read in sorted(f.text, key=lambda r: r.score):  # weakest first: the strongest wins
            line = canonical_words(read.text)
            if not line:
                continue
            for w in phrases:
                edits = phrase_edits(w, line)
                if edits is None:
                    continue
                for j, pi in users[w]:
                    if read.score >= min_score[j] and read.score >= raw[i, x0 + j]:
                        hit[i, x0 + j] = True
                        raw[i, x0 + j] = read.score
                        box[i, b0 + j] = read.box
                        phrase_out[i, x0 + j] = pi
                        edits_out[i, x0 + j] = edits
    h = hit[:, x0:x1]
    ev[:, x0:x1] = np.where(h, _evidence(raw[:, x0:x1], min_score, 1.0 - min_score), 0.0)


def _safety_signals(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    hit: np.ndarray,
    ev: np.ndarray,
    raw: np.ndarray,
    box: np.ndarray,
    verdicts: Verdicts,
) -> None:
    """Strongest flag per (keyframe, safety class). A prompt class blocks at or above its
    threshold; a detector class where its ``SafetyVerdict`` blocks (``targeting.safety_policy``).
    ``raw`` is the strongest flag's score either way (reasons and notes repeat it)."""
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
    for j, kk in enumerate(index.safety_keys):
        v = verdicts.get(kk.name)
        if v is not None:
            h[:, j] = [x is not None and x.blocked for x in v]
    hit[:, s0:s1] = h
    ev[:, s0:s1] = np.where(h, raw[:, s0:s1], 0.0)


# ----------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decisions:
    """(n, C) per keyframe x campaign: ``target`` bool, ``blocked`` bool.

    Each is the ``.T`` view of a campaign-major (C, n) array, the layout ``decide`` computes
    in and ``scan_timeline`` reads campaign by campaign."""

    target: np.ndarray
    blocked: np.ndarray


def decide(sig: FrameSignals, index: ConceptIndex) -> Decisions:
    """All campaigns at once: each part is one gather of signal rows and one reduction per
    group of campaigns (``SignalLists.reduce``), on a signal-major copy of the hits."""
    n = sig.hit.shape[0]
    c = len(index.plans)
    hit = np.ascontiguousarray(sig.hit.T)  # (T, n)
    target = np.ones((c, n), dtype=bool)
    index.all_lists.reduce(np.logical_and, hit, target)
    if index.any_lists:
        held = np.ones((c, n), dtype=bool)
        index.any_lists.reduce(np.logical_or, hit, held)
        target &= held
    blocked = np.zeros((c, n), dtype=bool)
    index.exclude_lists.reduce(np.logical_or, hit, blocked)
    blocked |= index.exclude_concepts[:, None] & ~sig.has_emb[None, :]
    return Decisions(target.T, blocked.T)


def evidence(
    sig: FrameSignals, index: ConceptIndex, rows: np.ndarray, camps: np.ndarray
) -> np.ndarray:
    """(P,) float32: the evidence of campaign ``camps[i]`` on keyframe ``rows[i]`` of ``sig``,
    its strongest clause evidence (0 where none holds; rules in ``targeting.match``). Asked for
    pairs, not all keyframes x campaigns: only the matching ones (a tenth) need it."""
    return index.clause_lists.reduce_at(np.maximum, sig.ev, rows, camps, 0.0)


@dataclass(frozen=True)
class Matches:
    """Matching (campaign, keyframe) pairs sorted by campaign then keyframe: ``campaign``,
    ``row`` (keyframe index in time order), ``key = campaign * n + row``, ``evidence``."""

    campaign: np.ndarray
    row: np.ndarray
    key: np.ndarray
    evidence: np.ndarray


@dataclass(frozen=True)
class Hits:
    """Hits of target signals sorted by signal, strongest first (then earliest): ``signal``,
    ``row``, ``raw``, ``box`` (H, 4) NaN when none, ``aux_a``, ``aux_b`` (see ``FrameSignals``)."""

    signal: np.ndarray
    row: np.ndarray
    raw: np.ndarray
    box: np.ndarray
    aux_a: np.ndarray
    aux_b: np.ndarray


def _pairs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a (C, nc) bool mask as int64 (row, column) arrays, from one flat
    index array (half the output of ``nonzero``'s two index arrays of a 2-D mask)."""
    flat = np.flatnonzero(mask)
    row, col = np.divmod(flat, mask.shape[1])
    return row, col


def scan_timeline(
    frames: Sequence[FrameFacts],
    index: ConceptIndex,
    active: np.ndarray,
    policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
) -> tuple[Matches, np.ndarray, Hits]:
    """Evaluate the timeline in chunks of keyframes; keep only sparse results. Detector safety
    verdicts are decided over the whole timeline first (``policy``)."""
    n = len(frames)
    verdicts = safety_verdicts(frames, index, policy)
    o = index.offsets
    target_sigs = index.target_signals
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("mc", "mr", "me", "bk", "hs", "hr", "he", "hraw", "hbox", "ha", "hb")
    }
    for lo in range(0, n, MATCH_FRAME_CHUNK):
        chunk = frames[lo : lo + MATCH_FRAME_CHUNK]
        part = {k: v[lo : lo + MATCH_FRAME_CHUNK] for k, v in verdicts.items()}
        sig = frame_signals(chunk, index, policy, part)
        dec = decide(sig, index)
        # campaign-major (C, nc) views: the masks list pairs campaign by campaign
        blocked = dec.blocked.T & active[:, None]
        matched = dec.target.T & ~blocked & active[:, None]
        ci, fi = _pairs(matched)
        parts["mc"].append(ci)
        parts["mr"].append(fi + lo)
        parts["me"].append(evidence(sig, index, fi, ci))
        ci, fi = _pairs(blocked)
        parts["bk"].append(ci * n + fi + lo)
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
    key = mc * n + mr
    # Chunks come in frame order, each sorted campaign-major: a stable sort merges the runs.
    order = np.argsort(key, kind="stable")
    matches = Matches(mc[order], mr[order], key[order], cat["me"][order].astype(np.float64))
    # Quantized, so float noise of the BLAS product (which varies with the matrix shape) cannot
    # reorder keyframes whose evidence is equal for any practical purpose.
    strength = np.round(cat["he"].astype(np.float64) / EVIDENCE_RESOLUTION).astype(np.int64)
    h = np.lexsort((cat["hr"], -strength, cat["hs"]))
    hits = Hits(
        cat["hs"][h],
        cat["hr"][h],
        cat["hraw"][h],
        cat["hbox"][h],
        cat["ha"][h],
        cat["hb"][h],
    )
    return matches, np.sort(cat["bk"]), hits
