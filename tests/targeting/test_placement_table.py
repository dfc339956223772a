"""PlacementTable: the columns ``match_table`` returns are the placements ``match`` returns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from targeting.match import PlacementTable, match, match_table
from targeting.types import Placement
from tests.targeting.golden_match import inputs
from tests.targeting.timelines import TODAY


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> tuple[PlacementTable, list[Placement]]:
    """The golden scenario's video as a table and as ``match``'s list."""
    tl, cs, idx = inputs(tmp_path_factory.mktemp("examples"))
    return match_table(tl, cs, idx, today=TODAY), match(tl, cs, idx, today=TODAY)


def test_the_table_is_the_sequence_match_returns(
    pinned: tuple[PlacementTable, list[Placement]],
) -> None:
    table, want = pinned
    assert len(want) > 1000 and len(table) == len(want)
    assert list(table) == want
    assert [table[i] for i in (0, 1, len(want) // 2, -1)] == [
        want[i] for i in (0, 1, len(want) // 2, -1)
    ]
    assert table[10:20] == want[10:20] and table[::-7] == want[::-7]
    assert table.top(5) == want[:5] and table.top(0) == []
    assert [p.rank for p in table[:3]] == [1, 2, 3]
    with pytest.raises(IndexError):
        table[len(want)]


def test_reasons_are_shared_and_made_once_per_distinct_list(
    pinned: tuple[PlacementTable, list[Placement]],
) -> None:
    table, want = pinned
    calls: list[int] = []

    def count(rs: tuple[object, ...]) -> int:
        calls.append(len(rs))
        return len(rs)

    assert table.map_reasons(count) == [len(p.reasons) for p in want]
    assert table.reasons is not None
    assert len(calls) == len(table.reasons) < len(want)  # once per distinct list
    first = list(table)
    assert all(a.reasons is b.reasons for a, b in zip(first, table, strict=True))


def test_rows_and_json_lines_without_placement_objects(
    pinned: tuple[PlacementTable, list[Placement]],
) -> None:
    table, want = pinned
    assert list(table.rows()) == [
        (p.campaign, p.start_s, p.end_s, p.score, p.advertiser, p.bid_cpm, p.rank) for p in want
    ]
    assert table.json_lines() == [json.dumps(p.to_json()) for p in want]
    meta = {"metadata": {"show": "ünïcode", "n": 3}}
    assert table.json_lines(meta) == [json.dumps({**p.to_json(), **meta}) for p in want]
    clash = {"rank": 0}  # an extra that overwrites a field: the objects' own path, same text
    assert table.json_lines(clash)[:3] == [json.dumps({**p.to_json(), **clash}) for p in want[:3]]


def test_an_empty_table(tmp_path: Path) -> None:
    table = PlacementTable.empty("m")
    assert len(table) == 0 and list(table) == [] and table.top(3) == []
    assert table.json_lines() == [] and list(table.rows()) == [] and table.map_reasons(len) == []
    _, cs, idx = inputs(tmp_path)
    assert len(match_table([], cs, idx, today=TODAY, media="m")) == 0


def test_a_row_that_cannot_be_a_placement_is_refused(
    pinned: tuple[PlacementTable, list[Placement]],
) -> None:
    table, _ = pinned
    start = table.start_s.copy()
    start[3] = table.end_s[3] + 1.0
    with pytest.raises(ValueError, match="start_s <= end_s"):
        PlacementTable(
            table.media,
            table.campaign,
            start,
            table.end_s,
            table.score,
            table.bid_cpm,
            table.reason_list,
            table.reasons,
            table.campaign_ids,
            table.advertisers,
        )
    with pytest.raises(ValueError, match="shape"):
        PlacementTable(
            "m", np.zeros(2, np.int64), *[np.zeros(1)] * 4, np.zeros(2, np.int64), None, (), ()
        )


def test_top_of_some_campaigns_is_the_filtered_list_cut(
    pinned: tuple[PlacementTable, list[Placement]],
) -> None:
    """What TargetImage answers: the best placements of the wanted campaigns, global ranks."""
    table, want = pinned
    wanted = frozenset(p.campaign for p in want[::5]) | {"no-such-campaign"}
    assert table.top(20, campaigns=wanted) == [p for p in want if p.campaign in wanted][:20]
    assert table.top(20, campaigns=frozenset()) == want[:20]
    assert table.top(3, campaigns={"no-such-campaign"}) == []


def test_json_floats_are_written_per_bit_pattern() -> None:
    """-0.0 and 0.0 compare equal but print apart: the per-value cache must not merge them."""
    from targeting.placement_table import _per_float

    got = _per_float(np.array([0.0, -0.0, 0.1234567, 0.0]), lambda v: repr(round(v, 4)))
    assert got == ["0.0", "-0.0", "0.1235", "0.0"]
