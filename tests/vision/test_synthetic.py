"""Logo compositing: exact boxes, alpha blending, edge clipping, no mutation, bad arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import read_rgb
from vision.synthetic import jpeg_reencode, paste_logo, render_text
from vision.types import box_iou


@pytest.fixture(scope="module")
def coffee(real_images: dict[str, Path]) -> np.ndarray:
    return read_rgb(real_images["coffee"])  # (400, 600, 3)


@pytest.fixture(scope="module")
def logo2(real_images: dict[str, Path]) -> np.ndarray:
    return np.asarray(Image.open(real_images["logo2"]).convert("RGBA"))  # (130, 542, 4)


def _square_logo(side: int = 100) -> np.ndarray:
    """A real-valued, asymmetric opaque test pattern: a gradient with a dark corner block."""
    y, x = np.mgrid[0:side, 0:side]
    logo = np.dstack([x * 255 // side, y * 255 // side, np.full_like(x, 200)]).astype(np.uint8)
    logo[: side // 4, : side // 4] = 0
    return logo


@pytest.mark.parametrize(
    "center, scale, rotation, expected",
    [
        # 600x400 frame, a 100x100 logo at 1/4 of the width -> 150x150 px.
        ((0.5, 0.5), 0.25, 0.0, (225 / 600, 125 / 400, 375 / 600, 275 / 400)),
        ((0.25, 0.5), 0.1, 0.0, (120 / 600, 170 / 400, 180 / 600, 230 / 400)),
        # 90 degrees: a square stays a square of the same size.
        ((0.5, 0.5), 0.25, 90.0, (225 / 600, 125 / 400, 375 / 600, 275 / 400)),
        # 45 degrees: the box grows by sqrt(2) around the same centre.
        (
            (0.5, 0.5),
            0.25,
            45.0,
            (0.5 - 106 / 600, 0.5 - 106 / 400, 0.5 + 106 / 600, 0.5 + 106 / 400),
        ),
        # Clipped by the right edge: half of the logo is visible.
        ((1.0, 0.5), 0.25, 0.0, (525 / 600, 125 / 400, 1.0, 275 / 400)),
        # Clipped by the top-left corner.
        ((0.0, 0.0), 0.25, 0.0, (0.0, 0.0, 75 / 600, 75 / 400)),
    ],
)
def test_box_is_where_the_logo_landed(
    coffee: np.ndarray,
    center: tuple[float, float],
    scale: float,
    rotation: float,
    expected: tuple[float, ...],
) -> None:
    image, box = paste_logo(
        coffee, _square_logo(), center=center, scale=scale, rotation_deg=rotation
    )
    assert image.shape == coffee.shape and image.dtype == np.uint8
    assert box == pytest.approx(expected, abs=2.5 / 400)
    # Pixels outside the box are the background's, untouched.
    h, w = coffee.shape[:2]
    x0, y0, x1, y1 = round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)
    outside = np.ones((h, w), bool)
    outside[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1] = False
    assert np.array_equal(image[outside], coffee[outside])


def test_opaque_paste_shows_the_logo_and_never_mutates_inputs(coffee: np.ndarray) -> None:
    logo = _square_logo()
    bg_before, logo_before = coffee.copy(), logo.copy()
    image, box = paste_logo(coffee, logo, center=(0.5, 0.5), scale=100 / 600)  # 1:1 size
    assert np.array_equal(coffee, bg_before) and np.array_equal(logo, logo_before)
    assert image is not coffee
    assert box == pytest.approx((250 / 600, 150 / 400, 350 / 600, 250 / 400))
    # At 1:1 and no rotation the interior is the logo, pixel for pixel (edges are resampled).
    assert np.abs(image[152:248, 252:348].astype(int) - logo[2:98, 2:98]).max() <= 1


def test_rgba_logo_blends_by_alpha_and_box_is_tight_on_visible_pixels(
    coffee: np.ndarray, logo2: np.ndarray
) -> None:
    image, box = paste_logo(coffee, logo2, center=(0.5, 0.5), scale=542 / 600)  # 1:1 size
    alpha = logo2[..., 3]
    ys, xs = np.nonzero(alpha > 127)
    # Logo placed with its centre at (300, 200): its pixel (0, 0) lands at (29, 135).
    ox, oy = 29, 135
    expected = (
        (xs.min() + ox) / 600,
        (ys.min() + oy) / 400,
        (xs.max() + 1 + ox) / 600,
        (ys.max() + 1 + oy) / 400,
    )
    assert box == pytest.approx(expected, abs=1.5 / 400)
    region = image[oy : oy + 130, ox : ox + 542].astype(np.float32)
    bg = coffee[oy : oy + 130, ox : ox + 542].astype(np.float32)
    a = alpha.astype(np.float32)[..., None] / 255.0
    blend = logo2[..., :3] * a + bg * (1 - a)
    interior = (alpha == 0) | (alpha == 255)
    assert np.abs(region - blend)[interior].max() <= 1.0
    assert np.array_equal(region[alpha == 0], bg[alpha == 0])  # transparent: photo shows


def test_alpha_argument_forms_agree(coffee: np.ndarray, logo2: np.ndarray) -> None:
    rgb, a8 = np.ascontiguousarray(logo2[..., :3]), np.ascontiguousarray(logo2[..., 3])
    kw = {"center": (0.4, 0.6), "scale": 0.5, "rotation_deg": 12.0}
    ref_img, ref_box = paste_logo(coffee, logo2, **kw)
    for alpha in (a8, a8.astype(np.float32) / 255.0):
        img, box = paste_logo(coffee, rgb, alpha=alpha, **kw)
        assert box == ref_box
        assert np.abs(img.astype(int) - ref_img).max() <= 1
    img, box = paste_logo(coffee, rgb, alpha=a8 > 127, **kw)
    assert box_iou(box, ref_box) > 0.95


def test_pasted_real_logo_with_jpeg_keeps_its_look(coffee: np.ndarray, real_images) -> None:
    import skimage

    logo = read_rgb(Path(skimage.__file__).parent / "data" / "logo.png")
    image, box = paste_logo(coffee, logo, center=(0.3, 0.4), scale=0.3, rotation_deg=-15.0)
    lossy = jpeg_reencode(image)
    assert lossy.shape == image.shape and lossy.dtype == np.uint8
    mse = float(np.mean((lossy.astype(np.float64) - image) ** 2))
    assert 0.0 < mse < 30.0  # PSNR > 33 dB: mild, as in a web image
    # The box is where the orange/green logo is: its colours differ from the coffee photo's.
    x0, y0, x1, y1 = (round(v * s) for v, s in zip(box, (600, 400, 600, 400), strict=True))
    inside = image[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    before = coffee[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    assert np.abs(inside - before).max() > 30


_BG = np.zeros((100, 100, 3), np.uint8)
_LOGO = np.zeros((20, 40, 3), np.uint8)


@pytest.mark.parametrize(
    "background, logo, kwargs, message",
    [
        (np.zeros((100, 100), np.uint8), _LOGO, {}, r"background must be an \(H, W, 3\)"),
        (_BG.astype(np.float32), _LOGO, {}, "background must be uint8"),
        (_BG, np.zeros((20, 40), np.uint8), {}, r"logo must be an \(h, w, 3\) RGB or"),
        (_BG, _LOGO.astype(np.int32), {}, "logo must be uint8"),
        (_BG, np.zeros((20, 40, 4), np.uint8), {"alpha": np.ones((20, 40))}, "pass one source"),
        (_BG, _LOGO, {"alpha": np.ones((40, 20), np.uint8)}, r"alpha must be \(20, 40\)"),
        (_BG, _LOGO, {"alpha": np.full((20, 40), 2.0)}, "float alpha must lie in 0..1"),
        (_BG, _LOGO, {"alpha": np.ones((20, 40), np.int64)}, "alpha must be uint8"),
        (_BG, _LOGO, {"scale": 0.0}, r"scale must be in \(0, 2.0\]"),
        (_BG, _LOGO, {"scale": 3.0}, r"scale must be in \(0, 2.0\]"),
        (_BG, _LOGO, {"scale": float("nan")}, "scale must be"),
        (_BG, _LOGO, {"rotation_deg": 200.0}, "rotation_deg must be in -180..180"),
        (_BG, _LOGO, {"center": (float("nan"), 0.5)}, "center must be finite"),
        (_BG, _LOGO, {"scale": 0.05}, "smaller than 4 px"),
        (_BG, _LOGO, {"center": (1.5, 0.5)}, "lands entirely outside the frame"),
    ],
)
def test_bad_arguments_raise_value_error(
    background: np.ndarray, logo: np.ndarray, kwargs: dict, message: str
) -> None:
    args = {"center": (0.5, 0.5), "scale": 0.5} | kwargs
    with pytest.raises(ValueError, match=message):
        paste_logo(background, logo, **args)


@pytest.mark.parametrize(
    "image, quality, message",
    [
        (np.zeros((8, 8), np.uint8), 85, r"\(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.uint8), 0, "quality must be 1..100"),
        (np.zeros((8, 8, 3), np.uint8), 101, "quality must be 1..100"),
    ],
)
def test_jpeg_reencode_rejects_bad_arguments(image: np.ndarray, quality: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jpeg_reencode(image, quality)


@pytest.mark.parametrize("plate", [None, (20, 20, 20)])
def test_render_text_box_is_the_ink(coffee: np.ndarray, plate) -> None:
    before = coffee.copy()
    out, box = render_text(coffee, "Hello", origin=(0.2, 0.5), size_px=40, plate=plate)
    assert np.array_equal(coffee, before) and out.shape == coffee.shape
    h, w = coffee.shape[:2]
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    assert abs(x0 - 0.2 * w) < 4 and 20 < y1 - y0 < 40 and 60 < x1 - x0 < 140
    white = np.all(out == 255, axis=2)  # the text's own pixels
    ys, xs = np.nonzero(white & ~np.all(coffee == 255, axis=2))
    assert (xs.min(), ys.min()) >= (x0 - 1, y0 - 1) and (xs.max(), ys.max()) <= (x1 + 1, y1 + 1)
    changed = np.any(out != coffee, axis=2)
    ys, xs = np.nonzero(changed)
    pad = 0 if plate is None else 40 // 4
    assert xs.min() >= x0 - pad - 1 and xs.max() <= x1 + pad + 1


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("  ", {}, "text must not be empty"),
        ("Hi", {"size_px": 4}, "size_px must be 6..512 pixels, got 4"),
        ("Hi", {"origin": (float("nan"), 0.5)}, "origin must be finite"),
        ("Hi", {"origin": (1.5, 0.5)}, "lands entirely outside the frame"),
    ],
)
def test_render_text_rejects_bad_arguments(coffee: np.ndarray, text, kwargs, message) -> None:
    args = {"origin": (0.1, 0.1), "size_px": 20} | kwargs
    with pytest.raises(ValueError, match=message):
        render_text(coffee, text, **args)
