"""The Catalog: visibility of writes, reopen, snapshots checked on load, wrong-model refusal,
filters and near-duplicate removal through the public API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.vision.catalog.vectors import vector_for, vectors_for
from vision.catalog import Catalog, CatalogFilter, CatalogItem, IndexConfig
from vision.errors import CatalogError, InvalidArgument, NotFound

DIM = 24
SPACE = "test-space"


def _items(n: int, prefix: str = "i") -> list[CatalogItem]:
    return [
        CatalogItem(
            id=f"{prefix}{j}",
            category=("dress", "shoe", "bag")[j % 3],
            advertiser=("acme", "zenith")[j % 2],
            price=None if j % 7 == 0 else float(j),
            tags=("colour:red",) if j % 4 == 0 else (),
        )
        for j in range(n)
    ]


def _open(path: Path, **kw: object) -> Catalog:
    return Catalog.open(path, space_id=SPACE, dim=DIM, **kw)  # type: ignore[arg-type]


@pytest.fixture
def cat(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = _open(tmp_path / "cat", create=True, config=IndexConfig(hnsw_min_items=30))
    items = _items(60)
    c.upsert(items, vectors_for([i.id for i in items], DIM))
    yield c
    c.close()


def test_upsert_is_visible_and_replace_changes_vector_and_metadata(cat: Catalog) -> None:
    assert len(cat) == 60 and cat.search(vector_for("i5", DIM), 1)[0][0].item.id == "i5"
    cat.upsert([CatalogItem(id="i5", category="hat")], vector_for("other", DIM)[None])
    assert len(cat) == 60
    assert cat.get("i5") == CatalogItem(id="i5", category="hat")
    top = cat.search(vector_for("other", DIM), 1)[0][0]
    assert top.item.id == "i5" and top.score == pytest.approx(1.0, abs=1e-5)
    assert cat.search(vector_for("i5", DIM), 1)[0][0].item.id != "i5"


def test_delete_is_visible_and_counts_only_existing(cat: Catalog) -> None:
    assert cat.delete(["i1", "i2", "nope", "i1"]) == 2
    assert "i1" not in cat and cat.get("i2") is None and len(cat) == 58
    ids = {h.item.id for h in cat.search(vectors_for(["i1", "i2"], DIM), 60)[0]}
    assert "i1" not in ids and "i2" not in ids and len(ids) == 58


def test_reopen_replays_the_log_then_snapshots_switch_kind_and_compact(tmp_path: Path) -> None:
    path = tmp_path / "cat"
    with _open(path, create=True, config=IndexConfig(hnsw_min_items=30)) as c:
        items = _items(60)
        c.upsert(items, vectors_for([i.id for i in items], DIM))
        c.delete(["i3"])
        assert c.stats().kind == "flat" and c.stats().log_records == 2
    with _open(path) as c:  # replayed from the log alone
        assert len(c) == 59 and "i3" not in c
        c.save()  # 59 >= 30: HNSW now
        s = c.stats()
        assert (s.kind, s.generation, s.log_records, s.items) == ("hnsw", 1, 0, 59)
        c.delete([f"i{j}" for j in range(10)])  # tombstones in HNSW
        assert c.stats().tombstones == 9
    with _open(path) as c:
        assert len(c) == 50 and c.stats().tombstones == 9
        c.delete([f"i{j}" for j in range(10, 35)])
        c.save()  # 25 live < 30: back to exact flat, tombstones gone
        assert (c.stats().kind, c.stats().tombstones, len(c)) == ("flat", 0, 25)
        names = sorted(p.name for p in path.iterdir())
        assert names == [
            "LOCK",
            "MANIFEST.json",
            "index-000002.faiss",
            "items-000002.jsonl",
            "wal-000002.log",
        ]
    with _open(path, readonly=True) as c:
        assert sorted(c.ids()) == sorted(f"i{j}" for j in range(35, 60))
        np.testing.assert_allclose(c.vector("i40"), vector_for("i40", DIM), atol=1e-6)


@pytest.mark.parametrize("space_id, dim", [("other-model", DIM), (SPACE, DIM + 1)])
def test_opening_with_another_model_is_refused(cat: Catalog, space_id: str, dim: int) -> None:
    cat.save()
    cat.close()
    with pytest.raises(CatalogError, match=f"was built with model space '{SPACE}' \\(dim {DIM}\\)"):
        Catalog.open(cat.path, space_id=space_id, dim=dim)


def _damage_index_size(p: Path) -> None:
    f = next(p.glob("index-*.faiss"))
    f.write_bytes(f.read_bytes()[:-10])


def _damage_items_byte(p: Path) -> None:
    f = next(p.glob("items-*.jsonl"))
    data = bytearray(f.read_bytes())
    data[10] ^= 0x01
    f.write_bytes(bytes(data))


def _damage_manifest(p: Path) -> None:
    f = p / "MANIFEST.json"
    f.write_bytes(f.read_bytes()[:-20])


def _newer_format(p: Path) -> None:
    f = p / "MANIFEST.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), "format_version": 99}))


def _missing_file(p: Path) -> None:
    next(p.glob("items-*.jsonl")).unlink()


@pytest.mark.parametrize("damage, message", [
    (_damage_index_size, r"index-000001.faiss is \d+ bytes, the manifest says \d+"),
    (_damage_items_byte, "items-000001.jsonl fails its sha256"),
    (_damage_manifest, "MANIFEST.json is not valid JSON"),
    (_newer_format, "has format version 99"),
    (_missing_file, "named by the manifest cannot be read"),
])  # fmt: skip
def test_a_torn_or_mismatched_snapshot_is_refused(cat: Catalog, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    cat.save()
    cat.close()
    damage(cat.path)
    with pytest.raises(CatalogError, match=message):
        _open(cat.path)


def test_one_writer_per_directory_and_read_only_cannot_write(cat: Catalog) -> None:
    with pytest.raises(CatalogError, match="open for writing by another process"):
        _open(cat.path)
    with _open(cat.path, readonly=True) as ro:
        assert len(ro) == 60
        with pytest.raises(CatalogError, match="read-only"):
            ro.delete(["i1"])


def test_missing_catalog_is_an_error_unless_created(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no catalog at"):
        _open(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match=r"is not a catalog \(no MANIFEST.json\)"):
        _open(tmp_path / "empty")
    _open(tmp_path / "empty", create=True).close()  # a crash before the first manifest


def test_a_lost_manifest_is_not_silently_replaced_by_an_empty_catalog(cat: Catalog) -> None:
    cat.save()
    cat.close()
    (cat.path / "MANIFEST.json").unlink()
    with pytest.raises(
        CatalogError, match="holds catalog files .*index-000001.faiss.* but no MANIFEST"
    ):
        _open(cat.path, create=True)


@pytest.mark.parametrize("flt", [
    CatalogFilter(categories=frozenset({"dress"})),
    CatalogFilter(advertisers=frozenset({"zenith"}), min_price=10.0),
    CatalogFilter(min_price=5.0, max_price=20.0),
    CatalogFilter(tags=frozenset({"colour:red"}), categories=frozenset({"dress", "bag"})),
    CatalogFilter(categories=frozenset({"nothing-here"})),
])  # fmt: skip
def test_filters_return_exactly_the_admitted_items_best_first(
    cat: Catalog, flt: CatalogFilter
) -> None:
    q = vector_for("query", DIM)
    admitted = [it for it in _items(60) if flt.admits(it)]
    truth = sorted(admitted, key=lambda it: -float(vector_for(it.id, DIM) @ q))[:10]
    hits = cat.search(q, 10, filter=flt)[0]
    assert [h.item.id for h in hits] == [it.id for it in truth]


def test_near_duplicates_collapse_into_the_best(tmp_path: Path) -> None:
    with _open(tmp_path / "c", create=True) as c:
        base = vectors_for(["a", "b", "c", "d", "e"], DIM)
        noise = np.random.default_rng(0).standard_normal(base.shape).astype(np.float32) * 0.02
        ids = ["a", "b", "c", "d", "e", "a-copy", "b-copy", "c-copy"]
        c.upsert([CatalogItem(id=i) for i in ids], np.vstack([base, base[:3] + noise[:3]]))
        q = base[0]
        plain = [h.item.id for h in c.search(q, 4)[0]]
        assert plain[:2] in (["a", "a-copy"], ["a-copy", "a"])
        hits = c.search(q, 4, dedup_cosine=0.97)[0]
        assert len(hits) == 4 and len({h.item.id for h in hits}) == 4
        best = hits[0]
        assert {best.item.id, *best.duplicates} == {"a", "a-copy"}
        assert not any(h.item.id.startswith(best.item.id.split("-")[0]) for h in hits[1:])


def test_search_item_excludes_itself_and_unknown_ids_are_not_found(cat: Catalog) -> None:
    hits = cat.search_item("i7", 5)
    assert len(hits) == 5 and "i7" not in {h.item.id for h in hits}
    with pytest.raises(NotFound, match="no item 'missing'"):
        cat.search_item("missing")


@pytest.mark.parametrize("call, message", [
    (lambda c: c.search(vector_for("q", DIM), 0), "k must be an integer from 1 to 1000"),
    (lambda c: c.search(np.ones(DIM + 2), 3), r"shape \(N, 24\)"),
    (lambda c: c.search(np.zeros(DIM), 3), "all-zero vector"),
    (lambda c: c.search(vector_for("q", DIM), 3, dedup_cosine=2.0), "dedup_cosine must be in"),
    (lambda c: c.upsert([CatalogItem(id="x")] * 2, vectors_for(["x", "x"], DIM)), "appears twice"),
    (lambda c: c.upsert([CatalogItem(id="x")], vectors_for(["x", "y"], DIM)), "1 items but 2 vectors"),
])  # fmt: skip
def test_bad_requests_are_invalid_arguments(cat: Catalog, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument, match=message):
        call(cat)
