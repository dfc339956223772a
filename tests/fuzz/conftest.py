"""Hypothesis settings for the fuzz suite: a fixed seed (derandomized, no example database) so
CI runs the same cases every time. Nightly: `HYPOTHESIS_PROFILE=nightly ONSCREEN_FUZZ_SCALE=50`
(fresh random cases, 50x as many; see tests/fuzz/README.md)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "nightly",
    parent=settings.get_profile("ci"),
    derandomize=False,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FUZZ_SCALE = int(os.environ.get("ONSCREEN_FUZZ_SCALE", "1"))
"""Multiplies every fuzz test's example count."""


def examples(n: int) -> int:
    return n * max(1, FUZZ_SCALE)
