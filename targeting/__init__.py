"""onscreen.targeting: rules in, placements out. Knows nothing about pixels, models or gRPC.

It uses vision's data types (never a model); embeddings of concepts arrive through
``vision.semantic.SemanticModel``, a protocol serving fills with a loaded model.
"""

from __future__ import annotations

from targeting.types import Placement, Reason
from vision.errors import RuleProblem, RulesError

__all__ = ["Placement", "Reason", "RuleProblem", "RulesError"]
