"""``vision.catalog``'s public surface is pinned, and importing it loads no model framework."""

from __future__ import annotations

import subprocess
import sys

import vision.catalog


def test_catalog_all() -> None:
    assert sorted(vision.catalog.__all__) == [
        "Catalog", "CatalogFile", "CatalogFilter", "CatalogItem", "CatalogStats", "IndexConfig",
        "Region", "RegionHits", "SearchHit", "TagVocabulary", "TextModel", "VisualFeatures",
        "VisualModel",
        "parse_catalog_lines", "propose_regions", "read_catalog_file", "shop_the_look",
        "tags_from_scores", "zero_shot_tags",
    ]  # fmt: skip
    assert all(hasattr(vision.catalog, name) for name in vision.catalog.__all__)


def test_importing_the_catalog_loads_no_model_framework() -> None:
    code = "import sys, vision.catalog; print(sorted(m for m in ('torch', 'ultralytics', 'open_clip', 'grpc') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
