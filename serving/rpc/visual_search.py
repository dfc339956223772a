"""What the VisualSearch RPCs do, over domain objects: search the served catalog by image,
image region or item, and write items into it.

Images take the TargetImage path: admission and the decode budget priced from the header,
decoded on a CPU thread and shrunk for the models, then their visual features through the
catalog's batcher, which runs on the targeting models' one worker thread
(``serving.rpc.served_catalog``). Catalog reads and writes run on threads: a write's fsync
never stalls the event loop, and searches go on while a write is logged.

An UpsertItems call embeds every image first, then stores the good items in ONE catalog write
(one durable log record: after a crash all of them or none) and reports each bad item by its
position and id. What makes the whole call impossible (too many items, an image URL, the server
busy, the deadline) fails it before anything is written.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.rpc.config import DEFAULT_SIMILAR_ITEMS, MAX_DELETE_IDS, MAX_UPSERT_ITEMS
from serving.rpc.engine import ServerCore
from serving.rpc.handlers import (
    all_or_cancel,
    check_similar_count,
    decode_admitted,
    features_of,
    search_vector,
    served_catalog,
)
from serving.rpc.served_catalog import ServedCatalog
from vision.catalog.items import CatalogItem, check_item_id
from vision.catalog.limits import REGION_CROP_SIDE_PX
from vision.catalog.query import SearchHit
from vision.errors import InvalidArgument, MediaError, NotFound
from vision.types import Box

NAMED_METADATA = ("title", "category", "advertiser", "url", "price", "tags")
"""Metadata keys stored as the catalog item's own fields (filters read category, advertiser,
price and tags); every other key is kept as free-form ``extra`` text."""
RESERVED_METADATA = ("id", "image", "extra")
"""Metadata keys refused: they would shadow the item's id, its image source or the extra map."""


@dataclass(frozen=True)
class ItemUpsert:
    """One item of an UpsertItems call as received: ``image`` empty when none was sent."""

    id: str
    image: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemProblem:
    """Why one item of an UpsertItems call was not stored: its position, its id as sent."""

    index: int
    id: str
    message: str


@dataclass(frozen=True)
class UpsertOutcome:
    """What an UpsertItems call did: new items, replaced items, the items refused."""

    inserted: int
    replaced: int
    problems: tuple[ItemProblem, ...]


# --- metadata --------------------------------------------------------------------------------


def item_from_metadata(item_id: str, metadata: Mapping[str, str]) -> CatalogItem:
    """A CatalogItem from the wire's id and metadata map (ValueError saying what is wrong).

    Named keys become the item's fields (``price`` a decimal number, ``tags`` comma-separated),
    the rest its ``extra`` text, so a search returns what was upserted and the catalog filters
    see category, advertiser, price and tags.
    """
    check_item_id(item_id)
    reserved = sorted(set(metadata) & set(RESERVED_METADATA))
    if reserved:
        raise ValueError(f"metadata key(s) {', '.join(reserved)} are reserved")
    price: float | None = None
    if "price" in metadata:
        try:
            price = float(metadata["price"])
        except ValueError:
            raise ValueError(f"price must be a decimal number, got {metadata['price']!r}") from None
        if not math.isfinite(price):
            raise ValueError(f"price must be a finite number >= 0, got {metadata['price']!r}")
    tags = tuple(t.strip() for t in metadata.get("tags", "").split(",") if t.strip())
    extra = tuple((k, v) for k, v in metadata.items() if k not in NAMED_METADATA)
    return CatalogItem(
        id=item_id,
        title=metadata.get("title", ""),
        category=metadata.get("category", ""),
        advertiser=metadata.get("advertiser", ""),
        url=metadata.get("url", ""),
        price=price,
        tags=tags,
        extra=extra,
    )


def metadata_of(item: CatalogItem) -> dict[str, str]:
    """The metadata map a search returns for ``item``: its non-empty named fields (``price``
    as Python writes the number, ``tags`` comma-separated) and its extra text."""
    out = {k: str(getattr(item, k)) for k in ("title", "category", "advertiser", "url")}
    out = {k: v for k, v in out.items() if v}
    if item.price is not None:
        out["price"] = repr(item.price)
    if item.tags:
        out["tags"] = ",".join(item.tags)
    out.update(item.extra)
    return out


# --- requests --------------------------------------------------------------------------------


def crop_region(image: np.ndarray, region: Box) -> np.ndarray:
    """The normalized ``region`` (x0, y0, x1, y1) of ``image``; InvalidArgument for a box
    outside 0..1, inverted, or too small to embed (under REGION_CROP_SIDE_PX on a side)."""
    x0, y0, x1, y1 = region
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in region) or x0 >= x1 or y0 >= y1:
        raise InvalidArgument(
            f"region must be a box with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got "
            f"({x0:g}, {y0:g}, {x1:g}, {y1:g})"
        )
    h, w = image.shape[:2]
    left, right = math.floor(x0 * w), math.ceil(x1 * w)
    top, bottom = math.floor(y0 * h), math.ceil(y1 * h)
    if right - left < REGION_CROP_SIDE_PX or bottom - top < REGION_CROP_SIDE_PX:
        raise InvalidArgument(
            f"region is {right - left}x{bottom - top} pixels of the decoded image, under the "
            f"{REGION_CROP_SIDE_PX} px a side the model can compare"
        )
    return np.ascontiguousarray(image[top:bottom, left:right])


def similar_k(k: int) -> int:
    """SimilarItems' k: 0 is the default (DEFAULT_SIMILAR_ITEMS), else 1..MAX_SIMILAR_ITEMS."""
    return DEFAULT_SIMILAR_ITEMS if k == 0 else check_similar_count(k, "k")


async def similar_items(
    core: ServerCore,
    *,
    image: bytes | None,
    item_id: str | None,
    region: Box | None,
    k: int,
    deadline: float | None,
) -> list[SearchHit]:
    """The ``k`` items most like an image (or its ``region``), or like catalog item
    ``item_id`` (never itself; NotFound for an id not in the catalog)."""
    served = served_catalog(core, "SimilarItems")
    k = similar_k(k)
    if item_id is not None:
        try:
            check_item_id(item_id)
        except ValueError as exc:
            raise InvalidArgument(f"item_id: {exc}") from None
        try:
            return await asyncio.to_thread(served.catalog.search_item, item_id, k)
        except NotFound:  # the catalog's message names its server path: say it plainly
            raise NotFound(f"no item {item_id!r} in the catalog") from None
    if image is None:
        raise InvalidArgument("SimilarItems needs a query: image or item_id")
    engine = core.engine()
    pixels, _ = await decode_admitted(engine, image, "query image", served.features)
    if region is not None:
        pixels = crop_region(pixels, region)
    vector = await features_of(engine, served, pixels, deadline)
    del pixels
    return await search_vector(served, vector, k)


async def upsert_items(
    core: ServerCore, items: Sequence[ItemUpsert], deadline: float | None
) -> UpsertOutcome:
    """Embed every item's image, store the good items in one durable write, report the rest.

    Images are decoded and embedded at most ``features.max_batch`` at a time (so one call
    fills model batches without holding all its pixels at once); an item whose id, metadata or
    image is bad, or whose id came earlier in the call (the first one wins), is an ItemProblem.
    Overload, the deadline or a shutdown fail the whole call, with nothing written.
    """
    if len(items) > MAX_UPSERT_ITEMS:
        raise InvalidArgument(
            f"{len(items)} items in one UpsertItems call, the limit is {MAX_UPSERT_ITEMS}: split it"
        )
    served = served_catalog(core, "UpsertItems")
    engine = core.engine()
    problems: list[ItemProblem] = []
    todo: list[tuple[int, CatalogItem, bytes]] = []
    first: dict[str, int] = {}
    for i, it in enumerate(items):
        try:
            item = item_from_metadata(it.id, it.metadata)
        except ValueError as exc:
            problems.append(ItemProblem(i, it.id, str(exc)))
            continue
        if not it.image:
            problems.append(ItemProblem(i, it.id, "no image: set image_bytes"))
            continue
        if it.id in first:
            problems.append(
                ItemProblem(i, it.id, f"id repeated in this call (first at index {first[it.id]})")
            )
            continue
        first[it.id] = i
        todo.append((i, item, it.image))
    slots = asyncio.Semaphore(served.features.max_batch)

    async def embed(item: CatalogItem, data: bytes) -> np.ndarray | str:
        async with slots:
            try:
                pixels, _ = await decode_admitted(
                    engine, data, f"image of item {item.id!r}", served.features
                )
                return await features_of(engine, served, pixels, deadline)
            except MediaError as exc:  # this item's image alone is bad
                return f"image: {exc}"

    vectors = await all_or_cancel(*(embed(item, data) for _, item, data in todo))
    good: list[CatalogItem] = []
    rows: list[np.ndarray] = []
    for (i, item, _), v in zip(todo, vectors, strict=True):
        if isinstance(v, str):
            problems.append(ItemProblem(i, item.id, v))
        else:
            good.append(item)
            rows.append(v)
    problems.sort(key=lambda p: p.index)
    if not good:
        return UpsertOutcome(0, 0, tuple(problems))
    replaced = await asyncio.to_thread(_upsert, served, good, np.stack(rows))
    return UpsertOutcome(len(good) - replaced, replaced, tuple(problems))


def _upsert(served: ServedCatalog, items: list[CatalogItem], vectors: np.ndarray) -> int:
    """One durable catalog write; returns how many ids were in the catalog before it (a write
    racing another call for the same id may count it as new)."""
    replaced = sum(it.id in served.catalog for it in items)
    served.catalog.upsert(items, vectors)
    served.wrote()
    return replaced


async def delete_items(core: ServerCore, ids: Sequence[str]) -> tuple[int, list[str]]:
    """Remove items by id in one durable write: (how many were removed, the requested ids that
    were not in the catalog, in request order, once each)."""
    served = served_catalog(core, "DeleteItems")
    if len(ids) > MAX_DELETE_IDS:
        raise InvalidArgument(
            f"{len(ids)} ids in one DeleteItems call, the limit is {MAX_DELETE_IDS}: split it"
        )
    for item_id in ids:
        try:
            check_item_id(item_id)
        except ValueError as exc:
            raise InvalidArgument(f"ids: {exc}") from None
    return await asyncio.to_thread(_delete, served, list(dict.fromkeys(ids)))


def _delete(served: ServedCatalog, ids: list[str]) -> tuple[int, list[str]]:
    missing = [i for i in ids if i not in served.catalog]
    deleted = served.catalog.delete(ids)
    if deleted:
        served.wrote()
    return deleted, missing
