"""The packages' public surface is pinned: a change here is a change for every caller."""

from __future__ import annotations

import subprocess
import sys

import targeting
import vision


def test_vision_all() -> None:
    assert sorted(vision.__all__) == [
        "Box", "CatalogError", "ConceptScore", "DeadlineExceeded", "Detection", "FailedPrecondition", "Frame",
        "FrameFacts", "InvalidArgument", "LogoMatch", "MediaError", "ModelError", "NotFound",
        "OnscreenError", "Overloaded", "PlacementStoreError", "RequestError", "RuleProblem",
        "RulesError", "SafetyFlag", "StartupError", "TextRead", "Unavailable", "Unimplemented",
        "WeightsError", "box_area", "box_iou",
    ]  # fmt: skip
    assert all(hasattr(vision, name) for name in vision.__all__)


def test_targeting_all() -> None:
    assert sorted(targeting.__all__) == [
        "Placement", "Reason", "RuleProblem", "RulesError"
    ]  # fmt: skip
    assert all(hasattr(targeting, name) for name in targeting.__all__)


def test_importing_the_packages_loads_no_model_framework() -> None:
    code = "import sys, vision, targeting; print(sorted(m for m in ('torch', 'ultralytics', 'open_clip', 'grpc') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_vision_never_imports_targeting_or_serving() -> None:
    from pathlib import Path

    root = Path(vision.__file__).parent
    offenders = [
        f"{p.name}:{i}"
        for p in root.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if line.lstrip().startswith(
            ("from targeting", "import targeting", "from serving", "import serving")
        )
    ]
    assert offenders == []
