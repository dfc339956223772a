"""match() against the golden file: the same placements, reasons and order as the
implementation that wrote it (see ``tests.targeting.golden_match``)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.targeting.golden_match import GOLDEN, differences, records, scenario


def test_match_output_is_pinned_by_the_golden_file(tmp_path: Path) -> None:
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    got = records(scenario(tmp_path))
    assert len(want["video"]) > 1000 and len(want["still"]) > 10  # it pins something
    diff = differences(got, want)
    assert not diff, f"{len(diff)} difference(s) from {GOLDEN.name}, first: " + "; ".join(diff[:5])


def test_the_golden_comparison_sees_a_change() -> None:
    """The comparison itself: float noise passes, a moved placement or a new reason does not."""
    want = {"video": [{"score": 0.5, "reasons": [{"what": "acme"}]}]}
    assert (
        differences({"video": [{"score": 0.5 + 1e-9, "reasons": [{"what": "acme"}]}]}, want) == []
    )
    assert differences({"video": [{"score": 0.51, "reasons": [{"what": "acme"}]}]}, want)
    assert differences({"video": [{"score": 0.5, "reasons": [{"what": "acme"}, {}]}]}, want)
    assert differences({"video": [{"score": 0.5, "reasons": [{"what": "acm3"}]}]}, want)
