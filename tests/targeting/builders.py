"""Small builders shared by the index tests: campaigns from keyword arguments, concept clauses,
and a tiny IAB vocabulary with known geometry."""

from __future__ import annotations

from typing import Any

import numpy as np

from targeting.rules_schema import Campaign
from tests.targeting.fakes import FAKE_DIM


def camp(cid: str, **kw: Any) -> Campaign:
    kw.setdefault("target", {"any": [{"logo": {"brand": "acme"}}]})
    return Campaign.model_validate({"id": cid, **kw})


def concept(prompt: str, threshold: float | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"prompt": prompt}
    if threshold is not None:
        c["threshold"] = threshold
    return {"concept": c}


# A tiny IAB vocabulary with known geometry: one orthonormal axis per category.
# Automotive > Auto Body Styles > Commercial Trucks; Travel and Attractions are other trees.
AUTO, AUTO_BODY, AUTO_TRUCKS, TRAVEL = "1", "2", "3", "653"
VOCAB = (AUTO, AUTO_BODY, AUTO_TRUCKS, TRAVEL, "150", "151")
IAB_MATRIX = np.eye(len(VOCAB), FAKE_DIM, dtype=np.float32)


__all__ = ["AUTO", "AUTO_BODY", "AUTO_TRUCKS", "IAB_MATRIX", "TRAVEL", "VOCAB", "camp", "concept"]
