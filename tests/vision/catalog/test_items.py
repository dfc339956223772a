"""The catalog JSONL contract: good lines become items, each bad line is reported by number."""

from __future__ import annotations

from pathlib import Path

import pytest

from vision.catalog.items import (
    CatalogItem,
    parse_catalog_lines,
    read_catalog_file,
    require_clean,
)
from vision.errors import CatalogError


def test_good_lines_become_items_with_images_resolved(tmp_path: Path) -> None:
    f = tmp_path / "cat.jsonl"
    f.write_text(
        '{"id": "sku-1", "image": "imgs/a.jpg", "title": "Red dress", "category": "dress",'
        ' "advertiser": "acme", "price": 19.9, "url": "https://x/1"}\n'
        "\n"
        '{"id": "sku-2", "image": "/abs/b.png"}\n'
    )
    parsed = read_catalog_file(f)
    assert parsed.problems == ()
    a, b = parsed.items
    assert a == CatalogItem(
        id="sku-1", image=str(tmp_path / "imgs/a.jpg"), title="Red dress", category="dress",
        advertiser="acme", price=19.9, url="https://x/1",
    )  # fmt: skip
    assert b.image == "/abs/b.png" and b.price is None
    assert CatalogItem.from_json(a.to_json()) == a


def test_every_bad_line_is_reported_with_its_number_and_the_rest_are_kept() -> None:
    lines = [
        '{"id": "ok-1", "image": "a.jpg"}',
        "{not json",
        '["a", "list"]',
        '{"id": "no-image"}',
        '{"id": "", "image": "a.jpg"}',
        '{"id": "p", "image": "a.jpg", "price": "cheap"}',
        '{"id": "n", "image": "a.jpg", "price": -1}',
        '{"id": "u", "image": "a.jpg", "colour": "red"}',
        '{"id": "ok-1", "image": "b.jpg"}',
        '{"id": "ok-2", "image": "b.jpg", "tags": ["colour:red"]}',
    ]
    parsed = parse_catalog_lines(lines)
    assert [i.id for i in parsed.items] == ["ok-1", "ok-2"]
    assert parsed.problems == (
        "line 2: not JSON: Expecting property name enclosed in double quotes at column 2",
        "line 3: expected a JSON object, got list",
        "line 4: missing required field 'image' (a path)",
        "line 5: item id must be a non-empty string, got ''",
        "line 6: price must be a number, got 'cheap'",
        "line 7: price must be a finite number >= 0, got -1",
        "line 8: unknown field(s) colour; allowed: advertiser, category, extra, id, image, price, tags, "
        "title, url",
        "line 9: duplicate id 'ok-1' (first on line 1)",
    )
    with pytest.raises(CatalogError, match=r"8 bad line\(s\) in feed.jsonl\n  line 2: not JSON"):
        require_clean(parsed, "feed.jsonl")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"id": "x" * 300}, "item id is 300 characters, the limit is 256"),
        ({"id": "a\nb"}, "contains control characters"),
        ({"id": "a", "price": float("nan")}, "finite number"),
        ({"id": "a", "price": True}, "price must be a number"),
        ({"id": "a", "tags": "red"}, "tags must be a list"),
        ({"id": "a", "title": 3}, "title must be a string"),
    ],
)
def test_item_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CatalogItem(**kwargs)


def test_tags_are_sorted_and_unique() -> None:
    assert CatalogItem(id="a", tags=("b", "a", "b")).tags == ("a", "b")


def test_unreadable_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog file"):
        read_catalog_file(tmp_path / "missing.jsonl")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"id": "\xe9"}')
    with pytest.raises(CatalogError, match="cannot read catalog file"):
        read_catalog_file(bad)


def test_extra_text_attributes_round_trip_and_cannot_shadow_a_named_field() -> None:
    item = CatalogItem.from_json({"id": "sku-1", "extra": {"colour": "red", "brand": "Acme"}})
    assert item.extra == (("brand", "Acme"), ("colour", "red"))
    assert CatalogItem.from_json(item.to_json()) == item
    with pytest.raises(ValueError, match="'price' is a named field"):
        CatalogItem(id="sku-2", extra=(("price", "1"),))
    with pytest.raises(ValueError, match="extra must be an object"):
        CatalogItem.from_json({"id": "sku-3", "extra": "red"})
