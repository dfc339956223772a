"""Explanations for ``--explain``: one ``FrameDecision`` per keyframe and campaign."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from targeting.concept_index import ConceptIndex
from targeting.reasons import reason_at
from targeting.rules_schema import Campaign
from targeting.segments import prepare_timeline
from targeting.signals import MATCH_FRAME_CHUNK, decide, frame_signals
from targeting.types import Reason
from vision.types import FrameFacts

MAX_EXPLAIN_DECISIONS = 500_000
"""``explain_frames`` builds one object per keyframe x campaign: it is for a few campaigns."""


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
    frames, media_name, times = prepare_timeline(timeline, None)
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
        sig = frame_signals(chunk, index)
        dec = decide(sig, index)
        for i, f in enumerate(chunk):
            t = float(times[lo + i])

            for ci in pos:
                plan = index.plans[ci]
                matched = tuple(
                    reason_at(index, sig, i, s, t)
                    for s in dict.fromkeys(plan.clause_signals)
                    if sig.hit[i, s]
                )
                blocking = [
                    reason_at(index, sig, i, s, t, exclusion=True)
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
