"""onscreen.vision: pixels in, facts out. Knows nothing about ads, campaigns or gRPC.

The public surface is re-exported here; implementation modules are imported lazily by callers
that need models (importing this package loads no model and no torch).
"""

from __future__ import annotations

from vision.errors import MediaError, ModelError, OnscreenError, Overloaded, WeightsError
from vision.types import (
    Box,
    ConceptScore,
    Detection,
    Frame,
    FrameFacts,
    LogoMatch,
    SafetyFlag,
    box_area,
    box_iou,
)

__all__ = [
    "Box",
    "ConceptScore",
    "Detection",
    "Frame",
    "FrameFacts",
    "LogoMatch",
    "MediaError",
    "ModelError",
    "OnscreenError",
    "Overloaded",
    "SafetyFlag",
    "WeightsError",
    "box_area",
    "box_iou",
]
