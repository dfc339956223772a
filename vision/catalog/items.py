"""Catalog items and the catalog JSONL contract (``../shared/DESIGN.md``).

One item a line: ``{"id": "sku-1", "image": "path/or/file.jpg", "title": "...", "category":
"...", "advertiser": "...", "price": 19.9, "url": "...", "extra": {"colour": "red"}}``; only
``id`` and ``image`` are required, relative image paths are relative to the catalog file;
``extra`` holds free-form text attributes (what the gRPC ``CatalogItem.metadata`` carries beyond
the named fields), returned with results and never filtered on. Parsing reports *every* bad
line (``line N: message``) and keeps the good ones, so one typo in a million-line feed does not
stop a build.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision.catalog.limits import (
    MAX_EXTRA_FIELDS,
    MAX_EXTRA_KEY_CHARS,
    MAX_EXTRA_VALUE_CHARS,
    MAX_ITEM_ID_CHARS,
    MAX_JSONL_LINE_BYTES,
    MAX_TAGS_PER_ITEM,
)
from vision.errors import CatalogError

_TEXT_FIELDS = ("title", "category", "advertiser", "url")
_KNOWN_FIELDS = frozenset(("id", "image", "price", "tags", "extra", *_TEXT_FIELDS))


def check_item_id(item_id: object) -> str:
    """Return ``item_id`` if it is a usable item id (non-empty str, bounded, no control chars)."""
    if not isinstance(item_id, str) or not item_id:
        raise ValueError(f"item id must be a non-empty string, got {item_id!r}")
    if len(item_id) > MAX_ITEM_ID_CHARS:
        raise ValueError(f"item id is {len(item_id)} characters, the limit is {MAX_ITEM_ID_CHARS}")
    if any(ord(c) < 32 for c in item_id):
        raise ValueError(f"item id {item_id!r} contains control characters")
    return item_id


@dataclass(frozen=True)
class CatalogItem:
    """One catalog entry (a product, an ad creative) as stored with its vector.

    ``image`` is where the picture came from (a path, resolved against the catalog file), kept
    for reports; the index holds the vector, never the pixels. ``price`` is in the catalog's
    currency, ``None`` when unknown (a price filter then excludes the item). ``tags`` are
    attribute tags such as ``"colour:red"`` (see ``vision.catalog.tags``), sorted, unique.
    ``extra``: free-form (key, value) text attributes, sorted by key, keys unique and none of
    them a named field's (so a key has one meaning); kept and returned, never filtered on.
    """

    id: str
    image: str = ""
    title: str = ""
    category: str = ""
    advertiser: str = ""
    price: float | None = None
    url: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_item_id(self.id)
        for name in ("image", *_TEXT_FIELDS):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.price is not None:
            if isinstance(self.price, bool) or not isinstance(self.price, int | float):
                raise ValueError(f"price must be a number, got {self.price!r}")
            if not math.isfinite(self.price) or self.price < 0:
                raise ValueError(f"price must be a finite number >= 0, got {self.price!r}")
            object.__setattr__(self, "price", float(self.price))
        tags = self.tags
        if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
            raise ValueError(f"tags must be a list of non-empty strings, got {tags!r}")
        if len(tags) > MAX_TAGS_PER_ITEM:
            raise ValueError(f"{len(tags)} tags, the limit is {MAX_TAGS_PER_ITEM}")
        object.__setattr__(self, "tags", tuple(sorted(set(tags))))
        object.__setattr__(self, "extra", _checked_extra(self.extra))

    def to_json(self) -> dict[str, Any]:
        """The JSONL form (empty fields left out), the inverse of ``from_json``."""
        out: dict[str, Any] = {"id": self.id}
        for name in ("image", *_TEXT_FIELDS):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.price is not None:
            out["price"] = self.price
        if self.tags:
            out["tags"] = list(self.tags)
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CatalogItem:
        """Build an item from one decoded JSONL object; unknown keys are a ``ValueError``."""
        unknown = sorted(set(obj) - _KNOWN_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KNOWN_FIELDS))}"
            )
        if "id" not in obj:
            raise ValueError("missing required field 'id'")
        extra = obj.get("extra", {})
        if not isinstance(extra, Mapping):
            raise ValueError(f"extra must be an object of text values, got {extra!r}")
        return cls(
            id=obj["id"],
            image=obj.get("image", ""),
            title=obj.get("title", ""),
            category=obj.get("category", ""),
            advertiser=obj.get("advertiser", ""),
            price=obj.get("price"),
            url=obj.get("url", ""),
            tags=tuple(obj.get("tags", ())),
            extra=tuple(extra.items()),
        )


def _checked_extra(extra: object) -> tuple[tuple[str, str], ...]:
    """``extra`` as sorted (key, value) text pairs, every bound checked (ValueError)."""
    if isinstance(extra, str | bytes) or not isinstance(extra, tuple | list):
        raise ValueError(f"extra must be (key, value) pairs, got {extra!r}")
    pairs: dict[str, str] = {}
    for pair in extra:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValueError(f"extra must be (key, value) pairs, got {pair!r}")
        key, value = pair
        if not isinstance(key, str) or not key or len(key) > MAX_EXTRA_KEY_CHARS:
            raise ValueError(
                f"extra key {key!r} must be a non-empty string of at most "
                f"{MAX_EXTRA_KEY_CHARS} characters"
            )
        if key in _KNOWN_FIELDS:
            raise ValueError(f"extra key {key!r} is a named field: set the field itself")
        if not isinstance(value, str) or len(value) > MAX_EXTRA_VALUE_CHARS:
            raise ValueError(
                f"extra value of {key!r} must be a string of at most "
                f"{MAX_EXTRA_VALUE_CHARS} characters"
            )
        if key in pairs:
            raise ValueError(f"extra key {key!r} appears twice")
        pairs[key] = value
    if len(pairs) > MAX_EXTRA_FIELDS:
        raise ValueError(f"{len(pairs)} extra fields, the limit is {MAX_EXTRA_FIELDS}")
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class CatalogFile:
    """The result of reading a catalog JSONL: the good items and one problem per bad line."""

    items: tuple[CatalogItem, ...]
    problems: tuple[str, ...]
    """``"line N: message"``, 1-based line numbers, in file order."""


def parse_catalog_lines(lines: Iterable[str], base_dir: Path | None = None) -> CatalogFile:
    """Parse catalog JSONL lines, keeping good items and reporting each bad line.

    Blank lines are skipped. ``image`` is required here (a catalog line describes a picture to
    embed) and is resolved against ``base_dir`` when relative. A repeated id is a problem on the
    later line (the first one wins), so an update feed is explicit about what replaces what.
    """
    items: list[CatalogItem] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if len(line.encode("utf-8", "surrogatepass")) > MAX_JSONL_LINE_BYTES:
            problems.append(f"line {n}: longer than {MAX_JSONL_LINE_BYTES} bytes")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {n}: not JSON: {e.msg} at column {e.colno}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {n}: expected a JSON object, got {type(obj).__name__}")
            continue
        image = obj.get("image")
        if not isinstance(image, str) or not image:
            problems.append(f"line {n}: missing required field 'image' (a path)")
            continue
        if base_dir is not None and not Path(image).is_absolute():
            obj = {**obj, "image": str(base_dir / image)}
        try:
            item = CatalogItem.from_json(obj)
        except (ValueError, TypeError) as e:
            problems.append(f"line {n}: {e}")
            continue
        if item.id in seen:
            problems.append(f"line {n}: duplicate id {item.id!r} (first on line {seen[item.id]})")
            continue
        seen[item.id] = n
        items.append(item)
    return CatalogFile(items=tuple(items), problems=tuple(problems))


def read_catalog_file(path: Path) -> CatalogFile:
    """Read a catalog JSONL file; relative image paths resolve against its directory.

    A file that cannot be read at all (missing, not UTF-8) is a ``CatalogError``; bad lines are
    not: they come back in ``problems`` beside the good items.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(f"cannot read catalog file {path}: {e}") from e
    return parse_catalog_lines(text.splitlines(), base_dir=Path(path).resolve().parent)


def require_clean(parsed: CatalogFile, source: str) -> tuple[CatalogItem, ...]:
    """Return the items, or raise ``CatalogError`` listing every bad line of ``source``."""
    if parsed.problems:
        raise CatalogError(f"{len(parsed.problems)} bad line(s) in {source}", list(parsed.problems))
    return parsed.items
