"""Building a catalog from JSONL on real images: bad lines and bad images reported per line
while the rest are indexed; a second run is a no-op; a changed line is re-indexed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skimage

from tests.conftest import read_rgb
from tests.vision.catalog.features import ColourGradientFeatures
from vision.catalog.build import build_catalog

SK = Path(skimage.__file__).parent / "data"
GOOD = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png")


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    (tmp_path / "broken.png").write_bytes((SK / "coffee.png").read_bytes()[:500])
    lines = [json.dumps({"id": n.split(".")[0], "image": str(SK / n), "price": 10.0}) for n in GOOD]
    lines.insert(2, json.dumps({"id": "gone", "image": "missing.jpg"}))
    lines.insert(4, "{oops")
    lines.append(json.dumps({"id": "broken", "image": "broken.png"}))
    f = tmp_path / "catalog.jsonl"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_bad_lines_and_images_are_reported_per_line_and_the_rest_indexed(
    feed: Path, tmp_path: Path
) -> None:
    model = ColourGradientFeatures()
    seen: list[tuple[int, int]] = []
    report = build_catalog(
        feed, tmp_path / "idx", model, batch_size=2, progress=lambda d, t: seen.append((d, t))
    )
    assert report.indexed == 5 and report.unchanged == 0
    assert [p.split(":")[0] for p in report.problems] == ["line 3", "line 5", "line 8"]
    assert (
        "line 3: image " in report.problems[0] and "missing.jpg: no such file" in report.problems[0]
    )
    assert report.problems[1].startswith("line 5: not JSON")
    assert "broken.png" in report.problems[2]
    assert seen[-1] == (7, 7)

    again = build_catalog(feed, tmp_path / "idx", model)
    assert (again.indexed, again.unchanged) == (0, 5)

    feed.write_text(feed.read_text().replace('"price": 10.0}', '"price": 12.5}', 1))
    third = build_catalog(feed, tmp_path / "idx", model)
    assert (third.indexed, third.unchanged) == (1, 4)

    from vision.catalog import Catalog

    with Catalog.for_model(tmp_path / "idx", model, readonly=True) as cat:
        assert len(cat) == 5 and cat.get("astronaut").price == 12.5  # type: ignore[union-attr]
        hit = cat.search_images([read_rgb(SK / "chelsea.png")], model, 1)[0][0]
        assert hit.item.id == "chelsea"
