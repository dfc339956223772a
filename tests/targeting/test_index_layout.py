"""Packed per-campaign lists (targeting.index_layout): grouped reductions, campaign-major clauses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from targeting.concept_index import ConceptIndex
from targeting.index_layout import SignalLists
from tests.targeting.builders import camp

LISTS = [[2, 0], [], [1], [0, 1, 2], [2], []]


def test_signal_lists_group_campaigns_by_list_length() -> None:
    got = SignalLists.of(LISTS)
    assert [(camps.tolist(), sigs.tolist()) for camps, sigs in got.groups] == [
        ([2, 4], [[1], [2]]),
        ([0], [[2, 0]]),
        ([3], [[0, 1, 2]]),
    ]
    assert got and not SignalLists.of([[], []])


@pytest.mark.parametrize(
    "ufunc, fill", [(np.logical_or, False), (np.logical_and, True), (np.maximum, -1.0)]
)
def test_signal_lists_reduce_equals_a_loop_over_campaigns(ufunc: np.ufunc, fill: float) -> None:
    """Each listed campaign gets the reduction of its signals' rows; the others keep ``out``."""
    rng = np.random.default_rng(0)
    rows = rng.random((3, 5)) if ufunc is np.maximum else rng.random((3, 5)) < 0.5
    out = np.full((len(LISTS), 5), fill, dtype=rows.dtype)
    SignalLists.of(LISTS).reduce(ufunc, rows, out)
    for c, sigs in enumerate(LISTS):
        want = ufunc.reduce(rows[sigs], axis=0) if sigs else np.full(5, fill, dtype=rows.dtype)
        np.testing.assert_array_equal(out[c], want)


def test_signal_lists_reduce_at_pairs_equals_reduce() -> None:
    """The pairwise reduction (evidence of matching pairs only) agrees with the dense one."""
    rng = np.random.default_rng(1)
    values = rng.random((5, 3)).astype(np.float32)  # (n keyframes, T signals)
    lists = SignalLists.of(LISTS)
    dense = np.full((len(LISTS), 5), -1.0, dtype=np.float32)
    lists.reduce(np.maximum, np.ascontiguousarray(values.T), dense)
    rows, camps = np.divmod(np.arange(5 * len(LISTS)), len(LISTS))
    got = lists.reduce_at(np.maximum, values, rows, camps, -1.0)
    np.testing.assert_array_equal(got, dense[camps, rows])
    assert lists.group_of.tolist() == [1, -1, 0, 2, 0, -1]


def test_campaign_clauses_are_campaign_major_in_rules_order() -> None:
    """A signal named twice by one campaign counts once, at its first place."""
    acme, rival = {"logo": {"brand": "acme"}}, {"logo": {"brand": "rival"}}
    cs = [
        camp("a", target={"all": [rival], "any": [acme, rival]}),
        camp("b", target={"any": [acme]}),
    ]
    idx = ConceptIndex.build(cs, None, rules_root=Path("."))
    cc = idx.campaign_clauses
    sig = {kk.brand: idx.offsets["logo"] + j for j, kk in enumerate(idx.logo_keys)}
    assert cc.campaign.tolist() == [0, 0, 1]
    assert cc.signal.tolist() == [sig["rival"], sig["acme"], sig["acme"]]
    assert cc.position.tolist() == [0, 1, 0]
