"""onscreen.targeting: rules in, placements out. Knows nothing about pixels, models or gRPC.

It uses vision's data types (never a model); embeddings of concepts arrive through the
``ConceptEmbedder`` protocol that serving wires to vision.
"""

from __future__ import annotations

from targeting.embedding import ConceptEmbedder
from targeting.types import Placement, Reason
from vision.errors import RuleProblem, RulesError

__all__ = ["ConceptEmbedder", "Placement", "Reason", "RuleProblem", "RulesError"]
