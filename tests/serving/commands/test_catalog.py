"""``onscreen catalog build|query|stats`` on real images, with the colour+gradient test feature
standing in for the semantic model (the command takes its model as a factory)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage

from serving.commands.catalog import register
from tests.conftest import read_rgb
from tests.vision.catalog.features import ColourGradientFeatures

SK = Path(skimage.__file__).parent / "data"
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="onscreen")
    register(parser.add_subparsers(dest="command"), lambda args: ColourGradientFeatures())
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str, str]:
    lines = [
        json.dumps({"id": n.split(".")[0], "image": str(SK / n), "category": "photo", "title": n})
        for n in PHOTOS
    ]
    lines.append(json.dumps({"id": "gone", "image": "nope.jpg"}))
    feed = tmp_path / "catalog.jsonl"
    feed.write_text("\n".join(lines) + "\n")
    assert (
        _run(["catalog", "build", str(feed), "--out", str(tmp_path / "idx"), "--no-progress"]) == 1
    )
    out, err = capsys.readouterr()
    return tmp_path / "idx", out, err


def test_build_reports_the_bad_line_and_indexes_the_rest(built: tuple[Path, str, str]) -> None:
    _, out, err = built
    assert "5 item(s) indexed, 0 unchanged, 1 skipped" in out
    assert "catalog.jsonl: line 6: image " in err and "nope.jpg: no such file" in err


def test_query_json_and_regions(
    built: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = str(built[0])
    query = tmp_path / "q.png"
    cat = read_rgb(SK / "chelsea.png")
    cv2.imwrite(str(query), cv2.cvtColor(cat[20:-20, 30:-30], cv2.COLOR_RGB2BGR))
    assert _run(["catalog", "query", index, str(query), "-k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["id"] == "chelsea" and rows[0]["title"] == "chelsea.png" and len(rows) == 3

    look = np.full((300, 600, 3), 128, np.uint8)
    look[30:270, 20:280] = cv2.resize(read_rgb(SK / "coffee.png"), (260, 240))
    look[30:270, 320:580] = cv2.resize(cat, (260, 240))
    cv2.imwrite(str(query), cv2.cvtColor(look, cv2.COLOR_RGB2BGR))
    assert _run(["catalog", "query", index, str(query), "-k", "1", "--regions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_side = {
        ("left" if r["box"][2] < 0.55 else "right"): r["id"]
        for r in rows
        if r["box"][2] - r["box"][0] < 0.6
    }
    assert by_side == {"left": "coffee", "right": "chelsea"}, rows


def test_stats(built: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["catalog", "stats", str(built[0]), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["items"], stats["space_id"], stats["kind"]) == (
        5,
        "test-colour-gradient-v1",
        "flat",
    )


def test_the_example_catalog_with_the_default_model(tmp_path: Path, capsys) -> None:
    """What `make demo` runs: the example catalog built with the default semantic model
    (lite here) and queried with the coffee pin, region by region: the espresso cup wins."""
    from examples.build_media import build_pin
    from examples.catalog import ITEMS, write_catalog
    from serving.commands.cli import main

    feed = write_catalog(tmp_path / "feed")
    build_pin(tmp_path / "pin.jpg")
    out = tmp_path / "index"
    assert main(["catalog", "build", str(feed), "--out", str(out), "--no-progress"]) == 0
    assert f"{len(ITEMS)} item(s) indexed" in capsys.readouterr().out
    argv = ["catalog", "query", str(out), str(tmp_path / "pin.jpg"), "--regions", "-k", "1"]
    assert main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["region"] for r in rows} <= {"detector", "saliency", "grid", "image"}
    best = max(rows, key=lambda r: r["score"])
    assert best["id"] == "bean-espresso" and best["advertiser"] == "Beanery Roasters"
    # a rebuild finds nothing to do (resumable)
    assert main(["catalog", "build", str(feed), "--out", str(out), "--no-progress"]) == 0
    assert f"0 item(s) indexed, {len(ITEMS)} unchanged" in capsys.readouterr().out


def test_random_weights_and_lite_contradict(tmp_path: Path, capsys) -> None:
    from serving.commands.cli import main

    feed = tmp_path / "c.jsonl"
    feed.write_text(json.dumps({"id": "a", "image": str(SK / "coffee.png")}) + "\n")
    argv = ["catalog", "build", str(feed), "--out", str(tmp_path / "i"), "--no-progress"]
    assert main([*argv, "--semantic", "lite", "--random-weights"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "--random-weights (random CLIP) and --semantic lite contradict each other: pick one"
    )
