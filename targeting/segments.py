"""Segments: matching keyframes joined along the timeline, then kept or dropped by duration.

``prepare_timeline`` sorts a media's keyframes and checks its size, ``flying`` selects the
campaigns whose flight covers the day, and ``segment`` cuts each campaign's matching keyframes
into segments: a gap longer than ``gap_s`` or a blocked keyframe in between starts a new one; a
segment ends one sampling step (``estimate_step``) after its last keyframe but never past the next
keyframe; segments shorter than ``min_duration_s`` are dropped (rules in ``targeting.match``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.rules_schema import Campaign
from targeting.signals import Matches
from vision.types import FrameFacts

MAX_TIMELINE_KEYFRAMES = 100_000
"""Longest timeline accepted (a 4 h video at 0.5 s is 28,800 keyframes plus cuts)."""
TIME_EPS = 1e-9
"""Slack (seconds) in time comparisons, so 1.0 - 0.5 <= 0.5 holds despite float noise."""


def prepare_timeline(
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


def flying(campaigns: Sequence[Campaign], index: ConceptIndex, today: date | None) -> np.ndarray:
    """(C,) bool over ``index.plans``: the given campaigns that fly on ``today`` (all of them
    when ``today`` is None)."""
    active = np.zeros(len(index.plans), dtype=bool)
    active[index.positions_of(campaigns)] = True
    if today is not None:
        active &= index.campaign_table.flies_on(today)
    return active


@dataclass(frozen=True)
class Segments:
    """Kept segments: ``campaign`` (row in plans), ``first``/``last`` (positions in Matches),
    ``start``/``end`` seconds, ``score`` (mean evidence), ``bid``, ``campaign_id_rank`` (order
    of the campaign id among all ids, for tie-breaking without Python string sorting here).

    Per match (M,): ``of_match`` the kept segment it belongs to (-1 where its segment was
    dropped), ``match_start``/``match_end`` the span of its segment, kept or dropped (so an
    explanation can say how short a dropped one was)."""

    campaign: np.ndarray
    first: np.ndarray
    last: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    bid: np.ndarray
    campaign_id_rank: np.ndarray
    of_match: np.ndarray
    match_start: np.ndarray
    match_end: np.ndarray


def segment(
    m: Matches, blocked_keys: np.ndarray, times: np.ndarray, index: ConceptIndex
) -> Segments:
    """Split each campaign's matching keyframes into segments (rules in the module doc)."""
    n = times.size
    tab = index.campaign_table
    same = m.campaign[1:] == m.campaign[:-1]
    gap_ok = np.diff(times[m.row]) <= tab.gap_s[m.campaign[1:]] + TIME_EPS
    # blocked keys before each match (a matching pair is never a blocked one, so "before"
    # needs no side); more of them before the next match = one lies in between
    before = np.searchsorted(blocked_keys, m.key)
    blocked_between = before[1:] > before[:-1]
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
    return Segments(
        campaign=camp[keep],
        first=first[keep],
        last=last[keep],
        start=start[keep],
        end=end[keep],
        score=score[keep],
        bid=tab.bid_cpm[camp[keep]],
        campaign_id_rank=tab.id_rank[camp[keep]],
        of_match=renumber[seg_no],
        match_start=start[seg_no],
        match_end=end[seg_no],
    )
