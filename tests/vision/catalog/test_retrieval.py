"""Query by image on real photos: crops and variants of a catalog photo find the original.

The feature is the weak colour + gradient descriptor of ``features.py``, not the semantic
model: this tests the catalog's image path end to end on real pixels, and that even a simple
feature clears the issue's bar (original in the top 5 for >= 90% of crops and variants). The
semantic model's own figure belongs to its benchmark."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import read_rgb
from tests.vision.catalog.features import ColourGradientFeatures
from vision.catalog import Catalog, CatalogItem

SK_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
             "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "brick.png", "grass.png",
             "gravel.png", "camera.png")  # fmt: skip


def _variants(img: np.ndarray) -> dict[str, np.ndarray]:
    h, w = img.shape[:2]
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=40)
    return {
        "centre crop 80%": img[h // 10 : h - h // 10, w // 10 : w - w // 10],
        "left 70%": img[:, : int(w * 0.7)],
        "half size": cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "jpeg q40": np.asarray(Image.open(buf).convert("RGB")),
        "brighter": np.clip(img.astype(np.int16) + 20, 0, 255).astype(np.uint8),
    }


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    import matplotlib
    import skimage

    sk = Path(skimage.__file__).parent / "data"
    out = {name.split(".")[0]: read_rgb(sk / name) for name in SK_PHOTOS}
    out["grace_hopper"] = read_rgb(
        Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    )
    return out


def test_crops_and_variants_find_the_original_in_the_top_5(
    tmp_path: Path, photos: dict[str, np.ndarray]
) -> None:
    model = ColourGradientFeatures()
    with Catalog.for_model(tmp_path / "c", model, create=True) as cat:
        names = list(photos)
        cat.upsert(
            [CatalogItem(id=n) for n in names], model.visual_features([photos[n] for n in names])
        )
        queries = [(n, v, im) for n in names for v, im in _variants(photos[n]).items()]
        results = cat.search_images([im for _, _, im in queries], model, 5)
        ranks = [[h.item.id for h in hits].index(n) if n in [h.item.id for h in hits] else None
                 for (n, _, _), hits in zip(queries, results, strict=True)]  # fmt: skip
    top5 = sum(r is not None for r in ranks) / len(ranks)
    top1 = sum(r == 0 for r in ranks) / len(ranks)
    misses = [(n, v) for (n, v, _), r in zip(queries, ranks, strict=True) if r is None]
    print(
        f"{len(queries)} queries: original in top 5 {top5:.0%}, top 1 {top1:.0%}; misses {misses}"
    )
    assert top5 >= 0.9, misses


def test_a_model_of_another_space_cannot_query(
    tmp_path: Path, photos: dict[str, np.ndarray]
) -> None:
    from vision.errors import CatalogError

    class Other(ColourGradientFeatures):
        space_id = "other-space"

    with (
        Catalog.for_model(tmp_path / "c", ColourGradientFeatures(), create=True) as cat,
        pytest.raises(CatalogError, match="model space 'other-space' .* cannot query catalog"),
    ):
        cat.search_images([photos["coffee"]], Other(), 3)
