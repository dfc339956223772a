"""Limits and defaults of the visual-search catalog: named, with units, all finite."""

from __future__ import annotations

MAX_ITEM_ID_CHARS = 256
"""Longest catalog item id, in characters."""

MAX_JSONL_LINE_BYTES = 64 * 1024
"""Longest catalog JSONL line, in bytes (an item is metadata, not a payload)."""

MAX_TAGS_PER_ITEM = 64
"""Most attribute tags stored with one item."""

MAX_EXTRA_FIELDS = 32
"""Most free-form ``extra`` attributes stored with one item."""

MAX_EXTRA_KEY_CHARS = 64
"""Longest ``extra`` attribute name, in characters."""

MAX_EXTRA_VALUE_CHARS = 1024
"""Longest ``extra`` attribute value, in characters (metadata, not a payload)."""

MAX_K = 1000
"""Most results one query may ask for."""

MAX_QUERY_BATCH = 4096
"""Most query vectors in one search call."""

MAX_WAL_RECORD_BYTES = 256 * 1024 * 1024
"""Largest write-ahead-log record (one upsert batch), in bytes; bigger batches are refused."""

DEFAULT_HNSW_MIN_ITEMS = 50_000
"""At or above this many live items a snapshot builds HNSW instead of an exact flat index: flat
search costs ``items x dim`` multiply-adds per query (50k x 1280 is ~64M, a few ms on 2 cores)."""

DEFAULT_HNSW_M = 32
"""HNSW graph degree (links per node per layer); more is better recall, more memory."""

DEFAULT_HNSW_EF_CONSTRUCTION = 80
"""HNSW candidate list size while inserting; more is a better graph, a slower build."""

DEFAULT_HNSW_EF_SEARCH = 96
"""HNSW candidate list size while searching (raised to ``k`` when ``k`` is larger)."""

EXACT_FILTER_MAX_ITEMS = 20_000
"""A filtered HNSW query whose filter allows at most this many items is answered exactly over
those items: a graph walk that may only *return* a small fraction of the nodes loses recall,
while exact search over 20k x 1280 is still a few ms."""

DEFAULT_COMPACT_FRACTION = 0.2
"""An HNSW snapshot is rebuilt without its tombstones when they are at least this fraction of
its nodes; below it the tombstones are stored and keep being filtered inside the search."""

DEFAULT_DEDUP_COSINE = 0.97
"""Two results whose vectors have a cosine above this are near-duplicates (same photo
re-encoded, resized or lightly cropped); the lower-ranked one collapses into the better one."""

DEDUP_FETCH_FACTOR = 3
"""Near-duplicate removal looks at ``k x`` this many candidates so that ``k`` survive."""

SQ8_MIN_TRAIN_ITEMS = 1000
"""The 8-bit scalar quantizer learns each dimension's range from the first vectors added;
fewer than this many makes a weak quantizer (it still works, and retrains on rebuild)."""

MAX_REGIONS = 16
"""Most regions a shop-the-look query searches."""

MIN_REGION_AREA = 0.01
"""Regions smaller than this fraction of the image are too small to search."""

REGION_CROP_SIDE_PX = 32
"""Crops smaller than this many pixels on a side are not embedded."""
