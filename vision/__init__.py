"""onscreen.vision: pixels in, facts out. Knows nothing about ads, campaigns or gRPC.

The public surface is re-exported here; implementation modules are imported lazily by callers
that need models (importing this package loads no model and no torch).
"""

from __future__ import annotations

from vision.errors import (
    CatalogError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MediaError,
    ModelError,
    NotFound,
    OnscreenError,
    Overloaded,
    PlacementStoreError,
    RequestError,
    RuleProblem,
    RulesError,
    StartupError,
    Unavailable,
    Unimplemented,
    WeightsError,
)
from vision.types import (
    Box,
    ConceptScore,
    Detection,
    Frame,
    FrameFacts,
    LogoMatch,
    SafetyFlag,
    TextRead,
    box_area,
    box_iou,
)

__all__ = [
    "Box",
    "CatalogError",
    "ConceptScore",
    "DeadlineExceeded",
    "Detection",
    "FailedPrecondition",
    "Frame",
    "FrameFacts",
    "InvalidArgument",
    "LogoMatch",
    "MediaError",
    "ModelError",
    "NotFound",
    "OnscreenError",
    "Overloaded",
    "PlacementStoreError",
    "RequestError",
    "RuleProblem",
    "RulesError",
    "SafetyFlag",
    "StartupError",
    "TextRead",
    "Unavailable",
    "Unimplemented",
    "WeightsError",
    "box_area",
    "box_iou",
]
