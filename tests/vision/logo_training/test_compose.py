"""vision.logo_training.compose: synthetic frames on real backgrounds and the YOLO data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO
from vision.brands import BrandRefs, load_brands
from vision.logo_training.backgrounds import Background, load_backgrounds, training_split
from vision.logo_training.compose import (
    MIN_LOGO_SIDE_PX,
    ComposeConfig,
    compose_sample,
    frame_rng,
    lay_out,
    write_yolo_dataset,
    yolo_label_lines,
)

BRANDS_DIR = REPO / "examples" / "rules" / "brands"
CHANGED = 0
"""A pixel counts as changed by a paste when any channel differs by more than this."""
FRINGE_PX = 2
"""Anti-aliased edges (opacity < 0.5, outside the label by design) reach this far (px)."""
NEGATIVE_FRINGE_PX = 4
"""The same for negatives (no label): a scramble's cut tiles leave softer edges."""


@pytest.fixture(scope="module")
def brands() -> tuple[BrandRefs, ...]:
    return load_brands(BRANDS_DIR)


@pytest.fixture(scope="module")
def backgrounds() -> tuple[Background, ...]:
    return training_split(load_backgrounds())


def _px(box, w, h):
    return box[0] * w, box[1] * h, box[2] * w, box[3] * h


@pytest.mark.parametrize("index", range(8))
def test_labels_are_exactly_the_pasted_pixels(brands, backgrounds, index: int) -> None:
    """Every changed pixel lies in a pasted item's box (labels and negatives), and each
    label's box is tight: changed pixels reach each of its four edges."""
    cfg = ComposeConfig(p_occlusion=0.0)
    layout = lay_out(frame_rng(7, index), brands, backgrounds, cfg)
    h, w = layout.image.shape[:2]
    changed = np.abs(layout.image.astype(int) - layout.background.astype(int)).max(axis=2)
    changed = changed > CHANGED
    inside = np.zeros_like(changed)
    for p in layout.logos + layout.negatives:
        x0, y0, x1, y1 = _px(p.box, w, h)
        # Label edges sit on pixel boundaries (the box is the visible pixels' bounds).
        assert np.allclose([x0, y0, x1, y1], np.rint([x0, y0, x1, y1]), atol=1e-6)
        x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
        m = FRINGE_PX if p.cls >= 0 else NEGATIVE_FRINGE_PX
        inside[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m] = True
    assert not (changed & ~inside).any(), "a pixel changed outside every pasted box"
    for p in layout.logos:
        x0, y0, x1, y1 = (int(round(v)) for v in _px(p.box, w, h))
        region = changed[y0:y1, x0:x1]
        assert min(x1 - x0, y1 - y0) >= MIN_LOGO_SIDE_PX
        assert region[0].any() and region[-1].any(), p
        assert region[:, 0].any() and region[:, -1].any(), p


def test_written_labels_are_the_samples_boxes(brands, backgrounds, tmp_path: Path) -> None:
    ds = write_yolo_dataset(brands, backgrounds, tmp_path / "ds", n_images=6, seed=3)
    assert (ds.n_train, ds.n_val) == (5, 1)
    seen = 0
    for i in range(6):
        split = "val" if i == 5 else "train"
        lines = (tmp_path / "ds" / "labels" / split / f"{i:06d}.txt").read_text().splitlines()
        sample = compose_sample(3, i, brands, backgrounds)
        assert len(lines) == len(sample.labels)
        for line, (cls, (x0, y0, x1, y1)) in zip(lines, sample.labels, strict=True):
            c, cx, cy, bw, bh = line.split()
            assert int(c) == cls and 0 <= cls < len(brands)
            got = np.array([float(cx), float(cy), float(bw), float(bh)])
            want = np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
            assert np.abs(got - want).max() <= 5e-7
            seen += 1
        assert (tmp_path / "ds" / "images" / split / f"{i:06d}.jpg").stat().st_size > 1000
    assert seen == ds.n_boxes > 0
    data = yaml.safe_load(ds.data_yaml.read_text())
    assert data["names"] == {0: "acme", 1: "rival"}
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    assert Path(data["path"]) == (tmp_path / "ds").resolve()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "data.yaml"
    }


def test_same_seed_same_bytes_other_seed_other_frames(brands, backgrounds, tmp_path) -> None:
    a = write_yolo_dataset(brands, backgrounds, tmp_path / "a", n_images=4, seed=11)
    b = write_yolo_dataset(brands, backgrounds, tmp_path / "b", n_images=4, seed=11)
    c = write_yolo_dataset(brands, backgrounds, tmp_path / "c", n_images=4, seed=12)
    fa, fb, fc = _files(a.root), _files(b.root), _files(c.root)
    assert fa == fb and len(fa) == 8
    assert fa.keys() == fc.keys()
    assert sum(fa[k] != fc[k] for k in fa if k.endswith(".jpg")) == 4
    # Frame i does not depend on how many frames the data set has.
    one = compose_sample(11, 2, brands, backgrounds)
    assert one.labels == compose_sample(11, 2, brands, backgrounds).labels
    line = yolo_label_lines(one.labels)
    assert (a.root / "labels" / "train" / "000002.txt").read_text() == "".join(
        f"{ln}\n" for ln in line
    )


def test_the_mix_holds_small_logos_several_per_frame_and_negatives(brands, backgrounds) -> None:
    widths, per_frame, kinds, empty = [], [], set(), 0
    for i in range(40):
        layout = lay_out(frame_rng(0, i), brands, backgrounds)
        per_frame.append(len(layout.logos))
        widths += [p.box[2] - p.box[0] for p in layout.logos]
        kinds |= {p.kind for p in layout.negatives}
        empty += not layout.logos
        assert all(p.cls == -1 for p in layout.negatives)
        assert {p.cls for p in layout.logos} <= {0, 1}
    assert min(widths) < 0.05 and max(widths) > 0.2
    assert max(per_frame) >= 3 and empty >= 2
    assert kinds == {"text", "scramble"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_scale": 0.0}, "need 0 < min_scale <= max_scale <= 1"),
        ({"min_scale": 0.5, "max_scale": 0.2}, "need 0 < min_scale <= max_scale <= 1"),
        ({"max_logos": 0}, "max_logos must be >= 1"),
        ({"p_blur": 1.5}, "p_blur must be in 0..1"),
        ({"jpeg_quality": (90, 20)}, "jpeg_quality must be"),
    ],
)
def test_compose_config_errors(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ComposeConfig(**kwargs)


def test_dataset_argument_errors(brands, backgrounds, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_images must be >= 2"):
        write_yolo_dataset(brands, backgrounds, tmp_path, n_images=1)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        write_yolo_dataset(brands, backgrounds, tmp_path, n_images=4, val_fraction=1.0)
    with pytest.raises(ValueError, match="at least one brand and one background"):
        lay_out(frame_rng(0, 0), brands, ())
