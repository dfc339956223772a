"""FrameFacts timeline x campaigns -> explained, ranked Placements (the rules of matching).

The parts: ``targeting.signals`` (per-keyframe signals and decisions), ``targeting.segments``
(gaps, exclusions, min_duration, flights), ``targeting.reasons`` (what a placement names) and
``targeting.explain`` (``FrameDecision`` per keyframe for ``--explain``); ``match`` here puts
them together. The rules they implement:

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
``threshold`` if given); a ``concept`` clause when the cosine reaches its threshold; a ``text``
clause when an OCR read (``FrameFacts.text``) with score >= ``min_score`` reads one of its
phrases (``targeting.text_match``: case-insensitive, whole words, OCR confusions tolerated).
An excluded text (``exclude.text``) blocks the same way.

**Evidence** of a clause that holds, in 0.5..1 (0 when it does not hold), non-decreasing in the
underlying score: ``0.5 + 0.5 * min(1, (s - threshold) / span)``, where ``s`` is the cosine
(concept, ``span = min(CONCEPT_EVIDENCE_SPAN, 1 - threshold)``, since CLIP cosines live in a
narrow band), the logo score, the best counted face score or the best matching OCR read's
score (``span = 1 - min_score``).
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
from datetime import date

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.explain import MAX_EXPLAIN_DECISIONS, FrameDecision, explain_frames
from targeting.placement_table import PlacementTable
from targeting.reasons import MAX_REASONS_PER_CLAUSE, ReasonLists, placement_reasons
from targeting.rules_schema import Campaign
from targeting.safety_policy import DEFAULT_SAFETY_POLICY, SafetyPolicy
from targeting.segments import (
    MAX_TIMELINE_KEYFRAMES,
    Segments,
    estimate_step,
    flying,
    prepare_timeline,
    segment,
)
from targeting.signals import scan_timeline
from targeting.types import Placement
from vision.types import FrameFacts

__all__ = [
    "MAX_EXPLAIN_DECISIONS",
    "MAX_REASONS_PER_CLAUSE",
    "MAX_TIMELINE_KEYFRAMES",
    "FrameDecision",
    "PlacementTable",
    "estimate_step",
    "explain_frames",
    "match",
    "match_table",
]


def match(
    timeline: Sequence[FrameFacts],
    campaigns: Sequence[Campaign],
    index: ConceptIndex,
    *,
    today: date,
    media: str | None = None,
    safety_policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
) -> list[Placement]:
    """Placements of ``campaigns`` (flying on ``today``) in one media's keyframe timeline.

    ``timeline`` is the media's FrameFacts in any order (sorted by ``t`` here); ``index`` must be
    built from (a superset of) these campaigns. ``media`` names the media in the placements
    (default: the keyframes' ``media_id``). Returns placements in rank order (see module doc);
    an empty timeline, or no campaign flying, gives ``[]``. ``safety_policy`` decides detector
    safety flags and which face boxes count (``targeting.safety_policy``).

    Every placement as an object: ``match_table`` gives the same as columns, for consumers
    that need a few of them, or write each once (a tenth of the cost at 10^4 placements).
    """
    return list(
        match_table(
            timeline, campaigns, index, today=today, media=media, safety_policy=safety_policy
        )
    )


def match_table(
    timeline: Sequence[FrameFacts],
    campaigns: Sequence[Campaign],
    index: ConceptIndex,
    *,
    today: date,
    media: str | None = None,
    safety_policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
) -> PlacementTable:
    """``match`` as a ``PlacementTable``: the same placements in the same order, as columns
    (``list(match_table(...)) == match(...)``); arguments as for ``match``.

    Nothing here loops over campaigns or placements in Python: decisions are (keyframes x
    campaigns) arrays, segments are found on the sparse list of matching (campaign, keyframe)
    pairs, reasons are a join of signal hits with it, kept as indices into shared lists.
    """
    frames, media_name, times = prepare_timeline(timeline, media)
    active = flying(campaigns, index, today)
    if not frames or not active.any():
        return PlacementTable.empty(media_name)
    n = len(frames)
    matches, blocked_keys, hits = scan_timeline(frames, index, active, safety_policy)
    if matches.campaign.size == 0:
        return PlacementTable.empty(media_name)
    segs = segment(matches, blocked_keys, times, index)
    if segs.campaign.size == 0:
        return PlacementTable.empty(media_name)
    reasons = placement_reasons(segs, matches, hits, index, times, n)
    return placement_table(segs, reasons, index, media_name)


def placement_table(
    segs: Segments, reasons: ReasonLists, index: ConceptIndex, media: str
) -> PlacementTable:
    """The kept segments as a table in rank order (module doc: score x bid, campaign id,
    start)."""
    order = np.lexsort((segs.start, segs.campaign_id_rank, -segs.score * segs.bid))
    tab = index.campaign_table
    return PlacementTable(
        media,
        segs.campaign[order].astype(np.int64),
        segs.start[order],
        segs.end[order],
        segs.score[order],
        segs.bid[order],
        reasons.of_segment[order],
        reasons,
        tab.ids,
        tab.advertisers,
    )
