"""Reference-logo matching on real photos with real logos pasted in, and brands-dir loading.

Two brands: ``matplotlib`` (matplotlib's ``logo2.png``, RGBA text logo with a transparent
background) and ``skimage`` (scikit-image's ``data/logo.png``, an opaque round logo). Each is
pasted into real photos at 0.5x..2x of a base width, at varied places, rotated up to ±15° and
JPEG re-encoded; the right brand must be found where it was pasted and the other brand must
not be. Every clean photo must give no match at all: a false logo is what hurts advertisers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import read_rgb
from vision.brands import BrandRefs, load_brands
from vision.errors import MediaError
from vision.logo_matcher import WORK_MAX_SIDE, LogoMatcher
from vision.synthetic import jpeg_reencode, paste_logo
from vision.types import box_iou

BASE_PX = 240
"""Base logo width in work-scale pixels (the frame as the matcher sees it, <= 960 px)."""
MIN_IOU = 0.7
CLEAR_SCORE = 0.6
JPEG_QUALITY = 85


def _sk(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).resolve().parent / "data" / name


def _mpl(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.__file__).resolve().parent / "mpl-data" / "sample_data" / name


@pytest.fixture(scope="module")
def brands_dir(tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("brands")
    (root / "matplotlib").mkdir()
    (root / "skimage").mkdir()
    shutil.copy(real_images["logo2"], root / "matplotlib" / "logo2.png")
    shutil.copy(_sk("logo.png"), root / "skimage" / "logo.png")
    return root


@pytest.fixture(scope="module")
def matcher(brands_dir: Path) -> LogoMatcher:
    return LogoMatcher.from_brands_dir(brands_dir)


@pytest.fixture(scope="module")
def photos(real_images: dict[str, Path]) -> dict[str, np.ndarray]:
    out = {k: read_rgb(p) for k, p in real_images.items() if k != "logo2"}
    out["rocket"] = read_rgb(_sk("rocket.jpg"))
    return out


@pytest.fixture(scope="module")
def logos(real_images: dict[str, Path]) -> dict[str, np.ndarray]:
    rgba = np.asarray(Image.open(real_images["logo2"]).convert("RGBA"))
    a = rgba[..., 3:].astype(np.float32) / 255.0
    plate = np.rint(rgba[..., :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)
    return {
        "matplotlib": rgba,  # transparent, straight over the photo
        "matplotlib-plate": plate,  # the same logo printed on a white plate
        "skimage": read_rgb(_sk("logo.png")),  # opaque
    }


def _composite(
    photo: np.ndarray,
    logos: dict[str, np.ndarray],
    style: str,
    mult: float,
    center: tuple[float, float],
    rot: float,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Paste a logo ``mult`` x BASE_PX wide (work px); return the JPEG'd frame and the box."""
    h, w = photo.shape[:2]
    work_w = w * min(1.0, WORK_MAX_SIDE / max(h, w))
    scale = mult * BASE_PX / work_w
    image, box = paste_logo(photo, logos[style], center=center, scale=scale, rotation_deg=rot)
    if style == "matplotlib-plate":
        # The matcher outlines the logo itself, not its plate: the expected box is where the
        # logo's opaque pixels landed, i.e. the box of the same paste with the RGBA logo.
        _, box = paste_logo(
            photo, logos["matplotlib"], center=center, scale=scale, rotation_deg=rot
        )
    return jpeg_reencode(image, JPEG_QUALITY), box


# photo, what is pasted (brand or brand-plate), width multiplier of BASE_PX, centre, rotation
POSITIVE_CASES = [
    ("bus", "skimage", 0.5, (0.3, 0.35), -12.0),
    ("zidane", "skimage", 2.0, (0.6, 0.5), 8.0),
    ("astronaut", "skimage", 1.0, (0.7, 0.3), 15.0),
    ("coffee", "skimage", 0.7, (0.25, 0.65), -5.0),
    ("chelsea", "skimage", 1.4, (0.5, 0.45), 3.0),
    ("rocket", "skimage", 1.0, (0.4, 0.6), -15.0),
    ("grace_hopper", "skimage", 0.5, (0.75, 0.8), 10.0),
    ("bus", "matplotlib-plate", 1.4, (0.5, 0.7), 5.0),
    ("zidane", "matplotlib-plate", 0.5, (0.2, 0.3), -8.0),
    ("astronaut", "matplotlib-plate", 1.4, (0.5, 0.8), -3.0),
    ("coffee", "matplotlib-plate", 1.0, (0.6, 0.25), 12.0),
    ("chelsea", "matplotlib-plate", 0.7, (0.35, 0.8), -14.0),
    ("rocket", "matplotlib-plate", 1.4, (0.55, 0.45), 10.0),
    ("grace_hopper", "matplotlib", 1.6, (0.5, 0.85), 4.0),
    ("zidane", "matplotlib", 2.0, (0.5, 0.2), -6.0),
    ("astronaut", "matplotlib", 1.6, (0.45, 0.15), 7.0),
]


@pytest.mark.parametrize(
    "photo, style, mult, center, rot",
    POSITIVE_CASES,
    ids=[f"{p}-{s}-{m}x" for p, s, m, _, _ in POSITIVE_CASES],
)
def test_pasted_logo_is_found_where_it_was_pasted(
    matcher: LogoMatcher,
    photos: dict[str, np.ndarray],
    logos: dict[str, np.ndarray],
    photo: str,
    style: str,
    mult: float,
    center: tuple[float, float],
    rot: float,
) -> None:
    brand = style.removesuffix("-plate")
    image, box = _composite(photos[photo], logos, style, mult, center, rot)
    found = matcher.match(image)
    mine = [m for m in found if m.brand == brand]
    assert len(mine) == 1, f"expected one {brand} match, got {found}"
    assert box_iou(mine[0].box, box) >= MIN_IOU, (mine[0].box, box)
    assert mine[0].method == "features"
    if mult >= 1.0 and style != "matplotlib":
        # A transparent text logo over a busy photo keeps fewer inliers: found, not "clear".
        assert mine[0].score > CLEAR_SCORE, mine[0]
    others = [m for m in found if m.brand != brand]
    assert others == [], f"other brand fired on a {brand} frame: {others}"


CLEAN = {
    "bus": None,
    "zidane": None,
    "grace_hopper": None,
    "astronaut": None,
    "coffee": None,
    "chelsea": None,
    "rocket": None,
    "camera": _sk("camera.png"),
    "page": _sk("page.png"),  # printed text: letters, but not ours
    "text": _sk("text.png"),
    "coins": _sk("coins.png"),
    "brick": _sk("brick.png"),
    "hubble": _sk("hubble_deep_field.jpg"),
    "motorcycle": _sk("motorcycle_left.png"),
    "pack": _mpl("Minduka_Present_Blue_Pack.png"),  # a product pack with its own branding
}


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_no_match_on_clean_photos(
    matcher: LogoMatcher, photos: dict[str, np.ndarray], name: str
) -> None:
    path = CLEAN[name]
    image = photos[name] if path is None else read_rgb(path)
    assert matcher.match(image) == []
    assert matcher.match(jpeg_reencode(image, 60)) == []


def test_both_brands_in_one_frame_and_one_brand_twice(
    matcher: LogoMatcher, photos: dict[str, np.ndarray], logos: dict[str, np.ndarray]
) -> None:
    frame, box_a = _composite(photos["zidane"], logos, "skimage", 1.0, (0.2, 0.3), 5.0)
    frame, box_b = _composite(frame, logos, "skimage", 0.8, (0.82, 0.7), -10.0)
    frame, box_c = _composite(frame, logos, "matplotlib-plate", 1.2, (0.5, 0.82), 2.0)
    found = matcher.match(frame)
    sk = sorted((m for m in found if m.brand == "skimage"), key=lambda m: m.box[0])
    mp = [m for m in found if m.brand == "matplotlib"]
    assert len(sk) == 2 and len(mp) == 1, found
    assert box_iou(sk[0].box, box_a) >= MIN_IOU
    assert box_iou(sk[1].box, box_b) >= MIN_IOU
    assert box_iou(mp[0].box, box_c) >= MIN_IOU
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)


def test_logo_cut_by_the_frame_edge_gets_a_clipped_box(
    matcher: LogoMatcher, photos: dict[str, np.ndarray], logos: dict[str, np.ndarray]
) -> None:
    image, box = _composite(photos["astronaut"], logos, "skimage", 1.2, (0.95, 0.5), 0.0)
    assert box[2] == 1.0
    (m,) = matcher.match(image)
    assert m.brand == "skimage" and m.box[2] == 1.0
    assert box_iou(m.box, box) >= MIN_IOU


def test_match_many_equals_match_in_order(
    matcher: LogoMatcher, photos: dict[str, np.ndarray], logos: dict[str, np.ndarray]
) -> None:
    frames = [
        _composite(photos["coffee"], logos, "skimage", 1.0, (0.5, 0.5), 0.0)[0],
        photos["chelsea"],
        _composite(photos["bus"], logos, "matplotlib-plate", 1.4, (0.5, 0.6), 0.0)[0],
    ]
    many = matcher.match_many(frames)
    assert many == [matcher.match(f) for f in frames]
    assert [[m.brand for m in ms] for ms in many] == [["skimage"], [], ["matplotlib"]]
    assert matcher.match_many([]) == []


def test_brands_and_reference_features(matcher: LogoMatcher, brands_dir: Path) -> None:
    assert matcher.brands == ("matplotlib", "skimage")
    refs = {r.brand: r for r in load_brands(brands_dir)}
    mask = refs["matplotlib"].masks[0]
    assert mask is not None and mask.dtype == np.uint8 and 0.2 < (mask > 0).mean() < 0.5
    assert refs["skimage"].masks == (None,)  # an alpha channel that is opaque everywhere
    # Transparent logo: every reference keypoint lies on the logo (mask, 2 px tolerance for
    # the keypoints found on downscaled variants), none on the transparent background.
    import cv2

    view = next(v for v in matcher.views if v.brand == "matplotlib")
    near_logo = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
    xs = np.clip(np.rint(view.points[:, 0]).astype(int), 0, mask.shape[1] - 1)
    ys = np.clip(np.rint(view.points[:, 1]).astype(int), 0, mask.shape[0] - 1)
    assert near_logo[ys, xs].all()
    assert len(view.points) == len(view.descriptors) > 100


def test_tiny_frame_has_no_match(matcher: LogoMatcher) -> None:
    assert matcher.match(np.zeros((8, 8, 3), np.uint8)) == []
    assert matcher.match(np.full((200, 300, 3), 128, np.uint8)) == []


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((32, 32), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((32, 32, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((32, 32, 3), np.float32), "uint8"),
        ([[0, 0, 0]], r"\(H, W, 3\)"),
    ],
)
def test_match_rejects_non_rgb_arrays(matcher: LogoMatcher, image: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        matcher.match(image)  # type: ignore[arg-type]


def test_matcher_constructor_errors(brands_dir: Path) -> None:
    refs = load_brands(brands_dir)
    with pytest.raises(ValueError, match="at least one brand"):
        LogoMatcher([])
    with pytest.raises(ValueError, match="more than once: skimage"):
        LogoMatcher([refs[1], refs[1]])
    with pytest.raises(ValueError, match="workers"):
        LogoMatcher(refs, workers=0)


# --- brands directory loading -------------------------------------------------------------


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _setup_plain_white(root: Path) -> None:
    _write_png(root / "blank" / "logo.png", np.full((200, 200, 3), 255, np.uint8))


def _setup_empty_brand(root: Path) -> None:
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "README.txt").write_text("logos go here")


def _setup_garbage(root: Path) -> None:
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")


def _setup_bad_slug(root: Path) -> None:
    _write_png(root / "Acme Motors" / "logo.png", np.zeros((64, 64, 3), np.uint8))


def _setup_gif(root: Path) -> None:
    (root / "acme").mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "acme" / "logo.gif")


def _setup_bmp_named_png(root: Path) -> None:
    (root / "acme").mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "acme" / "logo.png", "BMP")


def _setup_transparent(root: Path) -> None:
    _write_png(root / "ghost" / "logo.png", np.zeros((64, 64, 4), np.uint8))


def _setup_nothing(root: Path) -> None:
    root.mkdir(parents=True)


def _setup_file(root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_text("not a directory")


def _setup_missing(root: Path) -> None:
    pass


@pytest.mark.parametrize(
    "setup, message",
    [
        (_setup_missing, "does not exist"),
        (_setup_file, "not a directory"),
        (_setup_nothing, "no brand folders"),
        (_setup_empty_brand, "acme'? has no reference images"),
        (_setup_garbage, r"acme/logo\.png: cannot decode"),
        (_setup_bad_slug, "'Acme Motors' is not a lower-case slug.*'acme-motors'"),
        (_setup_gif, r"logo\.gif: \.gif reference logos are not supported"),
        (_setup_bmp_named_png, r"logo\.png: not a jpeg, png, webp file"),
        (_setup_transparent, r"ghost/logo\.png: the image is transparent almost everywhere"),
        (_setup_plain_white, r"blank/logo\.png: only \d+ features"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[len("_setup_") :] or None,
)
def test_bad_brands_dir_raises_media_error_naming_the_file(
    tmp_path: Path, setup, message: str
) -> None:
    root = tmp_path / "brands"
    setup(root)
    with pytest.raises(MediaError, match=message):
        LogoMatcher.from_brands_dir(root)


def test_load_brands_reads_rgb_jpeg_and_rgba_png_sorted(tmp_path: Path, real_images) -> None:
    root = tmp_path / "brands"
    (root / "zeta").mkdir(parents=True)
    (root / "alpha-co").mkdir()
    shutil.copy(real_images["logo2"], root / "alpha-co" / "b.png")
    Image.open(_sk("logo.png")).convert("RGB").save(root / "alpha-co" / "a.JPG", quality=90)
    shutil.copy(_sk("logo.png"), root / "zeta" / "z.webp.png")
    (root / "zeta" / ".DS_Store").write_bytes(b"\0")
    refs = load_brands(root)
    assert [r.brand for r in refs] == ["alpha-co", "zeta"]
    a = refs[0]
    assert [p.name for p in a.paths] == ["a.JPG", "b.png"]
    assert a.images[0].shape == (500, 500, 3) and a.masks[0] is None
    assert a.images[1].shape == (130, 542, 3) and a.masks[1] is not None
    assert a.masks[1].shape == (130, 542) and set(np.unique(a.masks[1])) == {0, 255}
    assert isinstance(a, BrandRefs)
