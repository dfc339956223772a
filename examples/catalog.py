"""The example catalog: fictional advertisers' items pictured by real photos that ship inside
installed packages, written as catalog JSONL (the contract in ``../shared/DESIGN.md``).

``make demo`` builds an index from it and asks which items look like the demo pin (per
region). ``variants`` makes the altered copies (crops, flips, light, blur, recompression) that
measure retrieval: for each, the item it came from should be among the top five results
(``bench/bench_catalog.py --real``, ``tests/vision/catalog/test_real_retrieval.py``).

    .venv/bin/python examples/catalog.py [OUT_DIR]     # default out/catalog-feed (not under
                                                       # examples/media: scans read that dir)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from examples.build_media import package_image, read_rgba  # noqa: E402


@dataclass(frozen=True)
class ExampleItem:
    id: str
    photo: tuple[str, ...]
    title: str
    category: str
    advertiser: str
    price: float


ITEMS: tuple[ExampleItem, ...] = (
    ExampleItem("bean-espresso", ("skimage", "data", "coffee.png"), "Espresso cup, 80 ml", "kitchen", "Beanery Roasters", 12.0),
    ExampleItem("pet-tabby-poster", ("skimage", "data", "chelsea.png"), "Tabby cat poster", "home", "Pawsome", 9.5),
    ExampleItem("moto-scooter", ("skimage", "data", "motorcycle_left.png"), "City scooter 125", "vehicles", "Tyrehaus", 2890.0),
    ExampleItem("kit-model-rocket", ("skimage", "data", "rocket.jpg"), "Model rocket kit", "toys", "Orbit Toys", 49.0),
    ExampleItem("photo-tripod", ("skimage", "data", "camera.png"), "Studio tripod", "electronics", "Acme", 89.0),
    ExampleItem("home-wall-clock", ("skimage", "data", "clock_motion.png"), "Wall clock", "home", "Acme", 29.0),
    ExampleItem("coin-set", ("skimage", "data", "coins.png"), "Collector's coin set", "hobbies", "Mintworks", 120.0),
    ExampleItem("gift-box-blue", ("matplotlib", "mpl-data", "sample_data", "Minduka_Present_Blue_Pack.png"), "Gift box, blue", "gifts", "Pawsome", 6.0),
    ExampleItem("costume-astronaut", ("skimage", "data", "astronaut.png"), "Astronaut costume", "costumes", "Orbit Toys", 59.0),
    ExampleItem("bus-city-tour", ("ultralytics", "assets", "bus.jpg"), "City bus tour ticket", "travel", "Tyrehaus", 25.0),
    ExampleItem("rug-brick", ("skimage", "data", "brick.png"), "Brick-pattern rug", "home", "Mintworks", 79.0),
    ExampleItem("rug-grass", ("skimage", "data", "grass.png"), "Grass-look rug", "home", "Mintworks", 69.0),
    ExampleItem("rug-gravel", ("skimage", "data", "gravel.png"), "Gravel-look rug", "home", "Mintworks", 69.0),
    ExampleItem("poster-horse", ("skimage", "data", "horse.png"), "Horse silhouette poster", "home", "Pawsome", 15.0),
    ExampleItem("poster-hubble", ("skimage", "data", "hubble_deep_field.jpg"), "Deep field poster", "home", "Orbit Toys", 19.0),
)  # fmt: skip


def load_photo(item: ExampleItem) -> np.ndarray:
    """The item's picture as (H, W, 3) uint8 RGB (grey and RGBA photos converted)."""
    img = read_rgba(package_image(*item.photo))
    return np.ascontiguousarray(img[..., :3])


def variants(img: np.ndarray) -> dict[str, np.ndarray]:
    """Altered copies a shopper's photo of the same thing might be: what retrieval must see
    through. Deterministic."""
    h, w = img.shape[:2]
    crop = img[int(h * 0.15) : int(h * 0.85), int(w * 0.15) : int(w * 0.85)]
    off_centre = img[: int(h * 0.75), int(w * 0.2) :]
    small = cv2.resize(img, (max(32, w // 4), max(32, h // 4)), interpolation=cv2.INTER_AREA)
    rot = cv2.warpAffine(
        img, cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.1), (w, h), borderMode=cv2.BORDER_REFLECT
    )
    ok, jpg = cv2.imencode(
        ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 20]
    )
    assert ok
    recompressed = cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return {
        "crop 70%": np.ascontiguousarray(crop),
        "off-centre crop": np.ascontiguousarray(off_centre),
        "mirrored": np.ascontiguousarray(img[:, ::-1]),
        "darker": (img.astype(np.float32) * 0.6).astype(np.uint8),
        "rotated 12 deg": rot,
        "quarter size": small,
        "jpeg q20": recompressed,
    }


def write_catalog(out: Path) -> Path:
    """Write the items' pictures (JPEG) and ``catalog.jsonl`` under ``out``; returns the file."""
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for item in ITEMS:
        rel = Path("images") / f"{item.id}.jpg"
        bgr = cv2.cvtColor(load_photo(item), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(out / rel), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
        lines.append(
            json.dumps(
                {
                    "id": item.id,
                    "image": str(rel),
                    "title": item.title,
                    "category": item.category,
                    "advertiser": item.advertiser,
                    "price": item.price,
                }
            )
        )
    feed = out / "catalog.jsonl"
    feed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return feed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else HERE.parent / "out" / "catalog-feed"
    feed = write_catalog(out)
    print(f"example catalog written: {feed} ({len(ITEMS)} items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
