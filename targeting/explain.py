"""Explanations for ``--explain``: one ``FrameDecision`` per keyframe and campaign.

An explanation must match the decision. So ``placed`` is not "this keyframe matched" but "this
keyframe is inside a placement that ``match`` returns": ``explain_frames`` runs the same signals,
segments and flights as ``targeting.match`` (the same functions, on the same timeline) and then
says, for every keyframe that is not placed, why not, in one sentence:

- the campaign is not flying on ``today`` (outside its flight dates);
- the keyframe is blocked by an exclusion (named);
- the target does not hold (which ``all`` clause failed, or that no ``any`` clause held);
- it matched, but its segment is shorter than ``min_duration_s`` (with the segment's span).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from targeting.concept_index import CampaignPlan, ConceptIndex
from targeting.reasons import reason_at
from targeting.rules_schema import Campaign
from targeting.safety_policy import (
    DEFAULT_SAFETY_POLICY,
    SafetyPolicy,
    face_counts,
    face_veto_note,
    second_opinion,
)
from targeting.segments import flying, prepare_timeline, segment
from targeting.signals import (
    MATCH_FRAME_CHUNK,
    FrameSignals,
    decide,
    evidence,
    frame_signals,
    safety_verdicts,
    scan_timeline,
)
from targeting.types import Reason
from vision.types import FrameFacts

MAX_EXPLAIN_DECISIONS = 500_000
"""``explain_frames`` builds one object per keyframe x campaign: it is for a few campaigns."""


@dataclass(frozen=True)
class FrameDecision:
    """Why one keyframe did or did not count for one campaign (for ``--explain``).

    ``target``: the campaign's target holds on this keyframe; ``blocked``: an exclusion hit;
    ``evidence``: the keyframe's evidence (0..1, 0 when the target does not hold).
    ``matched`` lists the clauses that held (kind/what/score/box as in placements),
    ``blocking`` the exclusions that hit (kind ``exclusion``; ``what`` is the safety class, or
    ``concept:<prompt>``, ``logo:<brand>``). ``placed``: the keyframe lies in a placement that
    ``targeting.match.match`` returns for this timeline, whose span (seconds) is ``placement``;
    otherwise ``why_not`` says why not (see the module docstring) and ``placement`` is None.
    ``notes`` says what the safety policy overruled on this keyframe: a detector flag at or
    above its class threshold that did not block, a face box that did not count (each with
    its reason, ``targeting.safety_policy``); a detector block's reason is its ``detail``.
    """

    media: str
    t: float
    campaign: str
    target: bool
    blocked: bool
    evidence: float
    matched: tuple[Reason, ...]
    blocking: tuple[Reason, ...]
    placed: bool = False
    placement: tuple[float, float] | None = None
    why_not: str | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.placed != (self.why_not is None) or self.placed != (self.placement is not None):
            raise ValueError(
                f"FrameDecision for {self.campaign!r} at t={self.t}: a placed keyframe has a "
                "placement and no why_not, an unplaced one a why_not and no placement"
            )

    def to_json(self) -> dict[str, object]:
        """One entry of ``decisions`` in a ``--explain`` line (the keyframe's media and ``t``
        are on the line itself): the design's reason shapes, plus ``placement`` and ``why_not``,
        and ``notes`` when there are any.
        """
        out: dict[str, object] = {
            "campaign": self.campaign,
            "placed": self.placed,
            "target": self.target,
            "blocked": self.blocked,
            "evidence": round(self.evidence, 4),
            "matched": [r.to_json() for r in self.matched],
            "blocked_by": [r.to_json() for r in self.blocking],
            "placement": (
                None
                if self.placement is None
                else [round(self.placement[0], 3), round(self.placement[1], 3)]
            ),
            "why_not": self.why_not,
        }
        if self.notes:  # only where the safety policy overruled something
            out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class _Spans:
    """Per matching (campaign row, keyframe row): its segment's span and whether it was kept."""

    kept: dict[tuple[int, int], tuple[float, float]]
    dropped: dict[tuple[int, int], tuple[float, float]]


def _spans(
    frames: Sequence[FrameFacts],
    times: np.ndarray,
    index: ConceptIndex,
    active: np.ndarray,
    policy: SafetyPolicy,
) -> _Spans:
    """The segments ``match`` makes of this timeline, as lookups by (campaign, keyframe)."""
    kept: dict[tuple[int, int], tuple[float, float]] = {}
    dropped: dict[tuple[int, int], tuple[float, float]] = {}
    if not active.any():
        return _Spans(kept, dropped)
    matches, blocked_keys, _ = scan_timeline(frames, index, active, policy)
    if matches.campaign.size == 0:
        return _Spans(kept, dropped)
    segs = segment(matches, blocked_keys, times, index)
    for ci, row, seg, start, end in zip(
        matches.campaign.tolist(),
        matches.row.tolist(),
        segs.of_match.tolist(),
        segs.match_start.tolist(),
        segs.match_end.tolist(),
        strict=True,
    ):
        (kept if seg >= 0 else dropped)[(ci, row)] = (start, end)
    return _Spans(kept, dropped)


def _target_failure(plan: CampaignPlan, sig: FrameSignals, i: int) -> str:
    """Which part of the target does not hold on row ``i``, in the rules' words."""
    target = plan.campaign.target
    n_all = len(target.all)
    for j, (clause, s) in enumerate(zip(target.all, plan.clause_signals[:n_all], strict=True)):
        if not sig.hit[i, s]:
            return f"target not met: target.all[{j}] ({clause.kind}) does not hold"
    return f"target not met: none of the {len(target.any)} target.any clause(s) holds"


def _why_not(
    plan: CampaignPlan,
    sig: FrameSignals,
    i: int,
    today: date | None,
    flying_today: bool,
    blocking: Sequence[Reason],
    target: bool,
) -> str | None:
    """Why keyframe ``i`` is not placed, or None when it matched (then its segment was short)."""
    if not flying_today:
        return f"not flying on {today} (flight {_flight(plan.campaign)})"
    if blocking:
        return "blocked by " + ", ".join(r.what for r in blocking)
    if not target:
        return _target_failure(plan, sig, i)
    return None


def _flight(c: Campaign) -> str:
    if c.flight is None:
        return "always"
    start = c.flight.start.isoformat() if c.flight.start else "open"
    end = c.flight.end.isoformat() if c.flight.end else "open"
    return f"{start}..{end}"


def explain_frames(
    timeline: Sequence[FrameFacts],
    campaigns: Sequence[Campaign],
    index: ConceptIndex,
    *,
    today: date | None = None,
    safety_policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
) -> list[FrameDecision]:
    """One decision per keyframe (time order) per campaign (given order), for ``--explain``.

    ``today`` (optional) applies flights as ``match`` does: a campaign outside its flight gets
    decisions that say so (never placed). Without ``today`` every campaign counts as flying.
    Costs one object per pair, so it refuses more than ``MAX_EXPLAIN_DECISIONS`` pairs: explain
    a few campaigns at a time.
    """
    frames, media_name, times = prepare_timeline(timeline, None)
    pos = [index.position(c) for c in campaigns]
    if len(frames) * len(pos) > MAX_EXPLAIN_DECISIONS:
        raise ValueError(
            f"explaining {len(frames)} keyframes x {len(pos)} campaigns exceeds "
            f"MAX_EXPLAIN_DECISIONS={MAX_EXPLAIN_DECISIONS}: pass fewer campaigns"
        )
    if not frames or not pos:
        return []
    active = flying(campaigns, index, today)
    spans = _spans(frames, times, index, active, safety_policy)
    verdicts = safety_verdicts(frames, index, safety_policy)
    safety_names = {
        s: index.safety_keys[s - index.offsets["safety"]].name
        for s in range(index.offsets["safety"], index.offsets["end"])
    }
    face_signals = range(index.offsets["face"], index.offsets["text"])
    out: list[FrameDecision] = []
    for lo in range(0, len(frames), MATCH_FRAME_CHUNK):
        chunk = frames[lo : lo + MATCH_FRAME_CHUNK]
        part = {k: v[lo : lo + MATCH_FRAME_CHUNK] for k, v in verdicts.items()}
        sig = frame_signals(chunk, index, safety_policy, part)
        dec = decide(sig, index)
        rows, cols = np.divmod(np.arange(len(chunk) * len(pos)), len(pos))
        ev = evidence(sig, index, rows, np.asarray(pos, dtype=np.intp)[cols])
        ev = np.where(dec.target[:, pos].ravel(), ev, 0.0).reshape(len(chunk), len(pos))
        for i, f in enumerate(chunk):
            t = float(times[lo + i])
            for k, ci in enumerate(pos):
                plan = index.plans[ci]
                matched = tuple(
                    reason_at(index, sig, i, s, t)
                    for s in dict.fromkeys(plan.clause_signals)
                    if sig.hit[i, s]
                )
                blocking = []
                notes: list[str] = []
                for s in plan.exclude_signals:
                    v = part.get(safety_names.get(s, ""))
                    verdict = v[i] if v is not None else None
                    if sig.hit[i, s]:
                        r = reason_at(index, sig, i, s, t, exclusion=True)
                        if verdict is not None:
                            r = replace(r, detail=verdict.why)
                        blocking.append(r)
                    elif verdict is not None:
                        notes.append(f"{safety_names[s]}: {verdict.why}")
                if any(s in face_signals for s in plan.clause_signals):
                    opinion = second_opinion(f)
                    notes.extend(
                        face_veto_note(d, opinion, safety_policy)
                        for d in f.detections
                        if d.kind == "face"
                        and opinion is not None
                        and not face_counts(d, opinion, safety_policy)
                    )
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
                target, blocked = bool(dec.target[i, ci]), bool(dec.blocked[i, ci])
                key = (ci, lo + i)
                placement = spans.kept.get(key)
                why_not = None
                if placement is None:
                    why_not = _why_not(plan, sig, i, today, bool(active[ci]), blocking, target)
                    if why_not is None:  # matched, so in a segment: a dropped one
                        start, end = spans.dropped[key]
                        why_not = (
                            f"segment {start:g}-{end:g} s lasts {end - start:g} s, shorter than "
                            f"min_duration_s {plan.campaign.min_duration_s:g}"
                        )
                out.append(
                    FrameDecision(
                        media=f.media_id if media_name == "" else media_name,
                        t=t,
                        campaign=plan.campaign.id,
                        target=target,
                        blocked=blocked,
                        evidence=float(ev[i, k]),
                        matched=matched,
                        blocking=tuple(blocking),
                        placed=placement is not None,
                        placement=placement,
                        why_not=why_not,
                        notes=tuple(notes),
                    )
                )
    return out
