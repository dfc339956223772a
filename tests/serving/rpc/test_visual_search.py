"""VisualSearch end to end: a catalog built from real photos with the real ``lite`` model,
served by ``start_server(--catalog)`` on 127.0.0.1, called with ordinary gRPC stubs.

The pictures are scikit-image's coffee, chelsea, astronaut, rocket and camera; queries are
crops and re-encodings of them, so "the right item first" is what any working visual feature
must give, and the exact status codes of every refusal are asserted. Tests that write use ids
of their own, so they share one module server without depending on their order.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving._proto.onscreen.v1 import (
    common_pb2,
    targeting_pb2,
    targeting_pb2_grpc,
    visual_search_pb2,
    visual_search_pb2_grpc,
)
from tests.conftest import fetched_weights, read_rgb
from tests.serving.rpc.grpc_fixtures import code_of, jpeg, local_config, write_rules
from vision.errors import CatalogError

PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "camera")
C = grpc.StatusCode
VS = visual_search_pb2


def _skimage(name: str) -> Path:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    return next(p for p in (data / f"{name}.png", data / f"{name}.jpg") if p.is_file())


def centre_crop(image: np.ndarray, keep: float = 0.6) -> np.ndarray:
    h, w = image.shape[:2]
    dh, dw = int(h * (1 - keep) / 2), int(w * (1 - keep) / 2)
    return np.ascontiguousarray(image[dh : h - dh, dw : w - dw])


def build_catalog_dir(root: Path, model, names=PHOTOS) -> Path:  # noqa: ANN001
    from vision.catalog.build import build_catalog

    lines = [
        json.dumps({"id": n, "image": str(_skimage(n)), "title": n.title(), "category": "demo"})
        for n in names
    ]
    jsonl = root / "catalog.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    out = root / "index"
    report = build_catalog(jsonl, out, model)
    assert report.indexed == len(names) and not report.problems
    return out


# --- module fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from vision.pipeline import PipelineConfig, build_pipeline

    fetched_weights("efficientnet-lite0", tmp_path_factory)
    fetched_weights("all-minilm-l6-v2", tmp_path_factory)
    return build_pipeline(
        PipelineConfig(semantic="lite", detector_weights=None, iab=False, device="cpu")
    )


@pytest.fixture(scope="module")
def features(pipeline):
    from vision.catalog import VisualFeatures

    return VisualFeatures(pipeline.semantic)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {n: read_rgb(_skimage(n)) for n in PHOTOS}


@pytest.fixture(scope="module")
def world(tmp_path_factory, features):
    root = tmp_path_factory.mktemp("visual-search")
    rules = write_rules(root / "rules")
    return {"root": root, "rules": rules, "catalog": build_catalog_dir(root, features)}


@pytest.fixture(scope="module")
def served(world, pipeline, loop):
    running = loop.start(local_config(world["rules"], catalog=world["catalog"]), pipeline)
    yield running
    loop.stop(running)


@pytest.fixture(scope="module")
def channel(served):
    with grpc.insecure_channel(served.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def search(channel):
    return visual_search_pb2_grpc.VisualSearchStub(channel)


def _ids(response) -> list[str]:  # noqa: ANN001
    return [it.id for it in response.items]


# --- SimilarItems ----------------------------------------------------------------------------


def test_a_crop_of_coffee_finds_coffee_first_with_its_metadata(search, photos) -> None:
    got = search.SimilarItems(
        VS.SimilarItemsRequest(image=jpeg(centre_crop(photos["coffee"])), k=3)
    )
    assert _ids(got)[0] == "coffee", [(i.id, i.score) for i in got.items]
    assert len(got.items) == 3
    assert dict(got.items[0].metadata) == {"title": "Coffee", "category": "demo"}
    scores = [i.score for i in got.items]
    assert scores == sorted(scores, reverse=True)


def test_a_region_searches_only_that_part_of_the_image(search, photos) -> None:
    import cv2

    side = 320
    left = cv2.resize(photos["chelsea"], (side, side), interpolation=cv2.INTER_AREA)
    right = cv2.resize(photos["coffee"], (side, side), interpolation=cv2.INTER_AREA)
    both = jpeg(np.hstack([left, right]))
    for box, want in (((0.0, 0.0, 0.5, 1.0), "chelsea"), ((0.5, 0.0, 1.0, 1.0), "coffee")):
        region = common_pb2.Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3])
        got = search.SimilarItems(VS.SimilarItemsRequest(image=both, region=region, k=2))
        assert _ids(got)[0] == want, (box, [(i.id, i.score) for i in got.items])


def test_by_item_id_the_item_itself_is_left_out(search) -> None:
    got = search.SimilarItems(VS.SimilarItemsRequest(item_id="coffee", k=4))
    assert "coffee" not in _ids(got) and len(got.items) == 4


def test_k_zero_is_the_default_of_ten_or_the_whole_catalog(search, served) -> None:
    got = search.SimilarItems(VS.SimilarItemsRequest(item_id="coffee"))
    assert len(got.items) == min(10, len(served.engine.catalog.catalog) - 1)


@pytest.mark.parametrize(
    "request_, code, message",
    [
        (VS.SimilarItemsRequest(item_id="nope"), C.NOT_FOUND, "no item 'nope' in the catalog"),
        (VS.SimilarItemsRequest(item_id="coffee", k=101), C.INVALID_ARGUMENT,
         "k must be in 1..100, got 101"),
        (VS.SimilarItemsRequest(item_id="coffee", k=-1), C.INVALID_ARGUMENT,
         "k must be in 1..100, got -1"),
        (VS.SimilarItemsRequest(image=b"\x89PNG\r\n\x1a\ngarbage"), C.INVALID_ARGUMENT,
         "query image"),
        (VS.SimilarItemsRequest(image=b"not an image at all"), C.INVALID_ARGUMENT, "query image"),
        (VS.SimilarItemsRequest(), C.INVALID_ARGUMENT, "needs a query: image or item_id"),
    ],
)  # fmt: skip
def test_bad_queries_get_their_exact_code(search, world, request_, code, message) -> None:
    got, details = code_of(lambda: search.SimilarItems(request_, timeout=30))
    assert got == code and message in details, details
    assert str(world["root"]) not in details  # no server path reaches the client


def test_a_region_too_small_or_outside_the_image_is_invalid(search, photos) -> None:
    image = jpeg(photos["coffee"])
    for box, message in (
        ((0.5, 0.5, 0.51, 0.51), "under the 32 px a side"),
        ((0.5, 0.0, 0.2, 1.0), "0 <= x0 < x1 <= 1"),
        ((0.0, 0.0, 1.5, 1.0), "0 <= x0 < x1 <= 1"),
    ):
        region = common_pb2.Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3])
        got, details = code_of(
            lambda r=region: search.SimilarItems(VS.SimilarItemsRequest(image=image, region=r))
        )
        assert got == C.INVALID_ARGUMENT and message in details, (box, details)


# --- UpsertItems / DeleteItems ---------------------------------------------------------------


def test_upsert_stores_the_good_items_and_reports_the_bad_one(search, photos) -> None:
    mug = jpeg(centre_crop(photos["coffee"], 0.8))
    cat = jpeg(centre_crop(photos["chelsea"], 0.8))
    got = search.UpsertItems(
        VS.UpsertItemsRequest(
            items=[
                VS.CatalogItem(
                    id="up-mug",
                    image_bytes=mug,
                    metadata={
                        "title": "Mug",
                        "price": "9.5",
                        "tags": "white,ceramic",
                        "colour": "white",
                    },
                ),  # fmt: skip
                VS.CatalogItem(id="up-broken", image_bytes=b"\xff\xd8\xffnot really a jpeg"),
                VS.CatalogItem(id="up-cat", image_bytes=cat),
                VS.CatalogItem(id="up-price", image_bytes=cat, metadata={"price": "cheap"}),
                VS.CatalogItem(id="up-mug", image_bytes=cat),
                VS.CatalogItem(id="up-none"),
            ]
        ),
        timeout=60,
    )
    assert (got.inserted_count, got.replaced_count) == (2, 0)
    errors = [(e.index, e.id) for e in got.errors]
    assert errors == [(1, "up-broken"), (3, "up-price"), (4, "up-mug"), (5, "up-none")]
    messages = [e.message for e in got.errors]
    assert messages[0].startswith("image: ") and "up-broken" in messages[0]
    assert "price must be a decimal number, got 'cheap'" in messages[1]
    assert "id repeated in this call (first at index 0)" in messages[2]
    assert "no image" in messages[3]
    hits = search.SimilarItems(VS.SimilarItemsRequest(image=jpeg(photos["coffee"]), k=2))
    assert set(_ids(hits)) == {"coffee", "up-mug"}
    mug_hit = next(i for i in hits.items if i.id == "up-mug")
    assert dict(mug_hit.metadata) == {
        "title": "Mug", "price": "9.5", "tags": "ceramic,white", "colour": "white"
    }  # fmt: skip
    for missing in ("up-broken", "up-price", "up-none"):
        code, _ = code_of(lambda m=missing: search.SimilarItems(VS.SimilarItemsRequest(item_id=m)))
        assert code == C.NOT_FOUND
    again = search.UpsertItems(
        VS.UpsertItemsRequest(items=[VS.CatalogItem(id="up-cat", image_bytes=cat)])
    )
    assert (again.inserted_count, again.replaced_count, len(again.errors)) == (0, 1, 0)


@pytest.mark.parametrize(
    "items, message",
    [
        ([VS.CatalogItem(id="u", image_url="https://example.com/a.jpg")],
         "URL fetching is off on this server"),
        ([VS.CatalogItem(id=f"many-{i}", image_bytes=b"x") for i in range(257)],
         "257 items in one UpsertItems call, the limit is 256"),
    ],
)  # fmt: skip
def test_upserts_that_cannot_be_done_fail_whole_and_store_nothing(
    search, served, items, message
) -> None:
    before = len(served.engine.catalog.catalog)
    code, details = code_of(lambda: search.UpsertItems(VS.UpsertItemsRequest(items=items)))
    assert code == C.INVALID_ARGUMENT and message in details, details
    assert len(served.engine.catalog.catalog) == before


def test_deleted_items_are_no_longer_found(search, photos) -> None:
    rocket = photos["rocket"]
    up = search.UpsertItems(
        VS.UpsertItemsRequest(items=[VS.CatalogItem(id="del-rocket", image_bytes=jpeg(rocket))])
    )
    assert up.inserted_count == 1
    query = VS.SimilarItemsRequest(image=jpeg(centre_crop(rocket)), k=2)
    assert "del-rocket" in _ids(search.SimilarItems(query))
    got = search.DeleteItems(VS.DeleteItemsRequest(ids=["del-rocket", "never-there"]))
    assert got.deleted_count == 1 and list(got.missing_ids) == ["never-there"]
    assert "del-rocket" not in _ids(
        search.SimilarItems(VS.SimilarItemsRequest(image=jpeg(rocket), k=10))
    )
    code, _ = code_of(lambda: search.SimilarItems(VS.SimilarItemsRequest(item_id="del-rocket")))
    assert code == C.NOT_FOUND
    code, details = code_of(lambda: search.DeleteItems(VS.DeleteItemsRequest(ids=[""])))
    assert code == C.INVALID_ARGUMENT and "item id must be a non-empty string" in details


# --- TargetImage similar items ---------------------------------------------------------------


def test_target_image_returns_similar_items_for_the_whole_image(channel, photos) -> None:
    targeting = targeting_pb2_grpc.TargetingStub(channel)
    got = targeting.TargetImage(
        targeting_pb2.TargetImageRequest(image=jpeg(photos["chelsea"]), similar_items_count=2),
        timeout=60,
    )
    assert [i.id for i in got.similar_items][0] == "chelsea"
    assert len(got.similar_items) == 2 and got.rules_version
    code, details = code_of(
        lambda: targeting.TargetImage(
            targeting_pb2.TargetImageRequest(image=jpeg(photos["chelsea"]), similar_items_count=101)
        )
    )
    assert code == C.INVALID_ARGUMENT and "similar_items_count must be in 1..100" in details


# --- concurrency -----------------------------------------------------------------------------


def test_readers_see_no_errors_while_a_writer_upserts_and_deletes(search, photos) -> None:
    queries = [
        VS.SimilarItemsRequest(item_id="coffee", k=3),
        VS.SimilarItemsRequest(image=jpeg(centre_crop(photos["astronaut"])), k=3),
    ]
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = [0]

    def reader(q: VS.SimilarItemsRequest) -> None:
        try:
            while not stop.is_set():
                got = search.SimilarItems(q, timeout=30)
                assert len(got.items) == 3
                reads[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(q,)) for q in queries * 2]
    for t in threads:
        t.start()
    try:
        camera = jpeg(photos["camera"])
        for round_ in range(6):
            ids = [f"rw-{round_}-{i}" for i in range(3)]
            up = search.UpsertItems(
                VS.UpsertItemsRequest(
                    items=[VS.CatalogItem(id=i, image_bytes=camera) for i in ids]
                ),
                timeout=60,
            )
            assert up.inserted_count == 3 and not up.errors
            assert search.DeleteItems(VS.DeleteItemsRequest(ids=ids)).deleted_count == 3
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:3]
    assert reads[0] >= len(threads)


# --- lifecycle: durability, snapshots, no catalog, wrong space -------------------------------


def test_upserted_items_survive_a_restart_and_shutdown_saves_a_snapshot(
    tmp_path, world, pipeline, features, loop, photos
) -> None:
    from vision.catalog import Catalog

    catalog = build_catalog_dir(tmp_path, features, names=("coffee", "chelsea"))
    config = local_config(world["rules"], catalog=catalog, warmup=False)
    first = loop.start(config, pipeline)
    try:
        with grpc.insecure_channel(first.address) as ch:
            up = visual_search_pb2_grpc.VisualSearchStub(ch).UpsertItems(
                VS.UpsertItemsRequest(
                    items=[VS.CatalogItem(id="kept", image_bytes=jpeg(photos["rocket"]),
                                          metadata={"title": "Rocket"})]
                )
            )  # fmt: skip
            assert up.inserted_count == 1
    finally:
        loop.stop(first)
    with Catalog.for_model(catalog, features, readonly=True) as cat:
        stats = cat.stats()
        assert (stats.items, stats.log_records, stats.generation) == (3, 0, 2)
    second = loop.start(config, pipeline)
    try:
        with grpc.insecure_channel(second.address) as ch:
            got = visual_search_pb2_grpc.VisualSearchStub(ch).SimilarItems(
                VS.SimilarItemsRequest(image=jpeg(centre_crop(photos["rocket"])), k=1)
            )
        assert _ids(got) == ["kept"] and dict(got.items[0].metadata) == {"title": "Rocket"}
    finally:
        loop.stop(second)


def test_writes_are_snapshotted_periodically(
    tmp_path, world, pipeline, features, loop, photos
) -> None:
    from vision.catalog import Catalog

    catalog = build_catalog_dir(tmp_path, features, names=("coffee",))
    config = local_config(
        world["rules"], catalog=catalog, warmup=False, catalog_save_interval_s=1.0
    )
    running = loop.start(config, pipeline)
    try:
        with grpc.insecure_channel(running.address) as ch:
            visual_search_pb2_grpc.VisualSearchStub(ch).UpsertItems(
                VS.UpsertItemsRequest(
                    items=[VS.CatalogItem(id="soon", image_bytes=jpeg(photos["camera"]))]
                )
            )
        served = running.engine.catalog
        give_up = time.monotonic() + 10
        while served.unsaved_writes and time.monotonic() < give_up:
            time.sleep(0.1)
        assert served.unsaved_writes == 0
        with Catalog.for_model(catalog, features, readonly=True) as cat:
            assert cat.stats().log_records == 0 and "soon" in cat
    finally:
        loop.stop(running)


def test_without_a_catalog_visual_search_says_how_to_get_one(world, pipeline, loop) -> None:
    running = loop.start(local_config(world["rules"], warmup=False), pipeline)
    try:
        with grpc.insecure_channel(running.address) as ch:
            stub = visual_search_pb2_grpc.VisualSearchStub(ch)
            targeting = targeting_pb2_grpc.TargetingStub(ch)
            for call in (
                lambda: stub.SimilarItems(VS.SimilarItemsRequest(item_id="x", k=500)),
                lambda: stub.UpsertItems(VS.UpsertItemsRequest()),
                lambda: stub.DeleteItems(VS.DeleteItemsRequest(ids=["x"])),
                lambda: targeting.TargetImage(
                    targeting_pb2.TargetImageRequest(image=b"junk", similar_items_count=1)
                ),
            ):
                code, details = code_of(call)
                assert code == C.UNIMPLEMENTED and "start the server with --catalog DIR" in details
    finally:
        loop.stop(running)


def test_a_catalog_of_another_model_space_fails_the_start(tmp_path, world, pipeline, loop) -> None:
    from vision.catalog import Catalog

    other = tmp_path / "other"
    Catalog.open(other, space_id="someone-else/visual", dim=8, create=True).close()
    with pytest.raises(CatalogError, match="someone-else/visual"):
        loop.start(local_config(world["rules"], catalog=other, warmup=False), pipeline)
    # the failed start released the directory: it opens for writing again
    Catalog.open(other, space_id="someone-else/visual", dim=8).close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--catalog", "/nonexistent/catalog"], "--catalog /nonexistent/catalog is not a directory"),
        (["--catalog", "EMPTY"], "is not a catalog (no MANIFEST.json)"),
        (["--catalog", "EMPTY", "--catalog-save-interval", "0"], "--catalog-save-interval must be"),
    ],
)  # fmt: skip
def test_serve_with_a_missing_catalog_exits_2_with_one_line(
    world, tmp_path, args, message, capsys, monkeypatch
) -> None:
    from serving.commands import cli
    from vision import pipeline as pipeline_module

    def no_models(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("models were loaded before the arguments were checked")

    monkeypatch.setattr(pipeline_module, "build_pipeline", no_models)
    monkeypatch.delenv("ONSCREEN_API_KEY", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [str(empty) if a == "EMPTY" else a for a in args]
    assert cli.main(["serve", "--rules", str(world["rules"]), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onscreen serve: "), lines
    assert message in lines[0]


def test_catalog_makes_the_semantic_model_load_for_rules_that_do_not_need_it(world) -> None:
    import argparse

    from serving.commands.model_options import add_model_options, pipeline_config_for_rules
    from targeting.rules_loader import load_rules

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    rules = load_rules(world["rules"])  # logos and faces only
    plain = pipeline_config_for_rules(parser.parse_args([]), rules)
    assert plain.semantic == "off"
    with_catalog = pipeline_config_for_rules(parser.parse_args([]), rules, semantic_for="--catalog")
    assert with_catalog.semantic == "auto"
    from vision.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="--catalog needs the semantic model"):
        pipeline_config_for_rules(
            parser.parse_args(["--semantic", "off"]), rules, semantic_for="--catalog"
        )
