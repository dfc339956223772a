"""Shop the look on real photos: regions from detector boxes, from saliency when nothing is
detected, and the grid when nothing stands out; each region finds its own catalog item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_rgb
from tests.vision.catalog.features import ColourGradientFeatures
from vision.catalog import Catalog, CatalogItem
from vision.catalog.regions import GRID_BOXES, crop, propose_regions, shop_the_look
from vision.types import Detection, box_iou

PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "motorcycle_left", "grace_hopper")
LEFT = (0.04, 0.1, 0.44, 0.9)
RIGHT = (0.56, 0.1, 0.96, 0.9)


def _paste(canvas: np.ndarray, photo: np.ndarray, box: tuple[float, ...]) -> None:
    import cv2

    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    canvas[y0:y1, x0:x1] = cv2.resize(photo, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photos() -> dict[str, Path]:
    """Real photos from scikit-image and matplotlib (not the shared fixture: that one imports
    ultralytics, and with it torch, which costs more than this whole module)."""
    import matplotlib
    import skimage

    sk = Path(skimage.__file__).parent / "data"
    paths = {n: sk / f"{n}.png" for n in PHOTOS} | {"rocket": sk / "rocket.jpg"}
    paths["grace_hopper"] = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    assert all(p.exists() for p in paths.values()), paths
    return paths


@pytest.fixture(scope="module")
def two_objects(photos: dict[str, Path]) -> np.ndarray:
    """A 'look' photo: the coffee cup and the cat on a plain grey wall, at known places."""
    canvas = np.full((400, 800, 3), 128, np.uint8)
    _paste(canvas, read_rgb(photos["coffee"]), LEFT)
    _paste(canvas, read_rgb(photos["chelsea"]), RIGHT)
    return canvas


@pytest.fixture
def catalog(tmp_path: Path, photos: dict[str, Path]):  # type: ignore[no-untyped-def]
    model = ColourGradientFeatures()
    cat = Catalog.for_model(tmp_path / "cat", model, create=True)
    pixels = [read_rgb(photos[n]) for n in PHOTOS]
    cat.upsert(
        [CatalogItem(id=n, image=str(photos[n])) for n in PHOTOS], model.visual_features(pixels)
    )
    yield cat
    cat.close()


def test_saliency_finds_the_two_objects_when_nothing_is_detected(two_objects: np.ndarray) -> None:
    regions = propose_regions(two_objects)
    assert {r.source for r in regions} == {"saliency"}
    for known in (LEFT, RIGHT):
        assert max(box_iou(r.box, known) for r in regions) > 0.4, (known, regions)


def test_detector_boxes_are_used_as_given(two_objects: np.ndarray) -> None:
    dets = [
        Detection("object", "cup", 0.6, LEFT),
        Detection("object", "cat", 0.9, RIGHT),
        Detection("object", "speck", 0.99, (0.0, 0.0, 0.05, 0.05)),  # under MIN_REGION_AREA
    ]
    regions = propose_regions(two_objects, dets)
    assert [(r.box, r.source, r.label) for r in regions] == [
        (RIGHT, "detector", "cat"),
        (LEFT, "detector", "cup"),
    ]


def test_a_flat_image_falls_back_to_the_grid() -> None:
    regions = propose_regions(np.full((120, 160, 3), 90, np.uint8))
    assert [r.box for r in regions] == list(GRID_BOXES) and {r.source for r in regions} == {"grid"}


@pytest.mark.parametrize("use_detector", [False, True])
def test_each_region_finds_its_own_item(
    catalog: Catalog, two_objects: np.ndarray, use_detector: bool
) -> None:
    model = ColourGradientFeatures()
    whole = catalog.search_images([two_objects], model, 1)[0][0].item.id
    dets = [Detection("object", "cup", 0.8, LEFT), Detection("object", "cat", 0.7, RIGHT)]
    results = shop_the_look(
        catalog, two_objects, model, detections=dets if use_detector else None, k=3
    )
    found = {}
    for region in results:
        for known, name in ((LEFT, "coffee"), (RIGHT, "chelsea")):
            if box_iou(region.box, known) > 0.4:
                found[name] = region.hits[0].item.id
                assert region.to_json()["items"][0]["id"] == region.hits[0].item.id  # type: ignore[index]
    assert found == {"coffee": "coffee", "chelsea": "chelsea"}, (whole, results)


def test_crop_is_the_box_pixels(two_objects: np.ndarray) -> None:
    assert crop(two_objects, (0.5, 0.25, 1.0, 0.75)).shape == (200, 400, 3)
