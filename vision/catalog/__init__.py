"""Visual search over a catalog of items (products, ad creatives): which items look alike.

Items are embedded with the semantic model's visual features and indexed in FAISS (exact flat
search for small catalogs, HNSW for large ones, optionally 8-bit compressed); metadata filters
run inside the search; every acknowledged change is durable (write-ahead log + checked
snapshots). Modules: ``items`` (the JSONL contract), ``index`` (FAISS), ``filters``, ``query``
(results, near-duplicate removal), ``wal`` and ``snapshot`` (durability), ``store`` (the
``Catalog`` that ties them together), ``regions`` (shop-the-look regions), ``tags``
(attribute tags).

Importing this package loads FAISS, numpy and OpenCV, never a model framework.
"""

from __future__ import annotations

from vision.catalog.filters import CatalogFilter
from vision.catalog.index import IndexConfig
from vision.catalog.items import CatalogFile, CatalogItem, parse_catalog_lines, read_catalog_file
from vision.catalog.query import RegionHits, SearchHit
from vision.catalog.regions import Region, propose_regions, shop_the_look
from vision.catalog.store import Catalog, CatalogStats, VisualFeatures, VisualModel
from vision.catalog.tags import TagVocabulary, TextModel, tags_from_scores, zero_shot_tags

__all__ = [
    "Catalog",
    "CatalogFile",
    "CatalogFilter",
    "CatalogItem",
    "CatalogStats",
    "IndexConfig",
    "Region",
    "RegionHits",
    "SearchHit",
    "TagVocabulary",
    "TextModel",
    "VisualFeatures",
    "VisualModel",
    "parse_catalog_lines",
    "propose_regions",
    "read_catalog_file",
    "shop_the_look",
    "tags_from_scores",
    "zero_shot_tags",
]
