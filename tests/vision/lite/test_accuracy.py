"""A floor on lite's IAB accuracy over the labelled real pictures of bench/semantic_set.py,
set from chance (a uniformly random tier-1 guess), not from what the model happens to score:
the model must know something about pictures, several times better than guessing."""

from __future__ import annotations

from bench.semantic_set import SET, chance, load, score, tier1_ranking
from vision.lite import LiteModel


def test_lite_is_well_above_chance_on_real_pictures(lite: LiteModel) -> None:
    got = score(tier1_ranking(lite, [load(it) for it in SET]))
    chance1, chance3 = chance()
    assert chance1 < 0.1 and chance3 < 0.25  # the bar is low; the floor below is not
    assert got.top1 >= 3 * chance1, (got.top1, chance1, got.hits)
    assert got.top3 >= 2 * chance3, (got.top3, chance3, got.hits)
