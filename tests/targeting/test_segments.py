"""Segments (targeting.segments): gaps, min_duration, cuts, still images, flights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from targeting.match import estimate_step, explain_frames
from tests.targeting.timelines import (
    BOX,
    STEP,
    E,
    camp,
    ff,
    run,
    spans,
)


@pytest.mark.parametrize(
    "gap_s, expected",
    [
        (1.0, [(0.0, 1.0), (2.0, 3.0)]),
        (1.5, [(0.0, 3.0)]),  # the 1.5 s hole is bridged
        (0.0, [(0.0, 0.5), (0.5, 1.0), (2.0, 2.5), (2.5, 3.0)]),
    ],
)
def test_gap_merge(gap_s: float, expected: list[tuple[float, float]]) -> None:
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    hit = {0.0, 0.5, 2.0, 2.5}
    timeline = [ff(t, logos=(("acme", 0.9),) if t in hit else ()) for t in times]
    assert spans(run([camp("c", gap_s=gap_s)], timeline)) == expected


@pytest.mark.parametrize(
    "min_duration_s, expected",
    [
        (0.0, [(0.0, 0.5), (2.0, 4.0)]),
        (0.5, [(0.0, 0.5), (2.0, 4.0)]),
        (1.0, [(2.0, 4.0)]),
        (2.0, [(2.0, 4.0)]),
        (2.01, []),
    ],
)
def test_min_duration_drops_short_segments(
    min_duration_s: float, expected: list[tuple[float, float]]
) -> None:
    hit = {0, 4, 5, 6, 7}  # 0.0 alone, then 2.0..3.5 (+ one step)
    timeline = [ff(i * STEP, logos=(("acme", 0.9),) if i in hit else ()) for i in range(9)]
    got = run([camp("c", min_duration_s=min_duration_s)], timeline)
    assert spans(got) == expected


def test_segment_end_stops_at_the_next_keyframe_after_a_cut() -> None:
    timeline = [ff(0.0, logos=(("acme", 0.9),)), ff(0.5, logos=(("acme", 0.9),)), ff(0.7), ff(1.0)]
    assert estimate_step(np.array([f.t for f in timeline])) == pytest.approx(0.3)
    assert spans(run([camp("c")], timeline)) == [(0.0, 0.7)]


def test_single_image_is_placed_whatever_min_duration() -> None:
    c = camp("c", min_duration_s=5.0)
    got = run([c], [ff(0.0, logos=(("acme", 0.9),), media="pin.jpg")])
    assert [(p.media, p.start_s, p.end_s, p.rank) for p in got] == [("pin.jpg", 0.0, 0.0, 1)]
    [r] = got[0].reasons
    assert (r.kind, r.what, r.t, r.box) == ("logo", "acme", 0.0, BOX)
    assert r.score == pytest.approx(0.9)


def test_empty_timeline_and_no_flying_campaign_give_nothing() -> None:
    c = camp("c", flight={"end": "2020-01-01"})
    assert run([camp("c")], []) == []
    assert run([c], [ff(0.0, logos=(("acme", 0.9),))]) == []
    idx = ConceptIndex.build([c], E, rules_root=Path("."))
    assert explain_frames([], [c], idx) == []


@pytest.mark.parametrize(
    "flight, placed",
    [
        (None, True),
        ({"start": "2026-12-02"}, False),  # starts tomorrow
        ({"start": "2026-12-01"}, True),  # first day (inclusive)
        ({"end": "2026-12-01"}, True),  # last day (inclusive)
        ({"end": "2026-11-30"}, False),  # ended yesterday
        ({"start": "2026-11-01", "end": "2027-02-28"}, True),
        ({"start": "2025-11-01", "end": "2026-02-28"}, False),
    ],
)
def test_flight_dates(flight: dict[str, str] | None, placed: bool) -> None:
    c = camp("c", flight=flight)
    got = run([c], [ff(0.0, logos=(("acme", 0.9),))])
    assert bool(got) is placed
