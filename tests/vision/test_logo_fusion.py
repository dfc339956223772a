"""vision.logo_fusion: the real matcher on real composited frames, with fixed detections.

The detections are fixed (a small stand-in with the detector's interface) so that each fusion
rule is tested on its own, independent of what a trained model happens to find.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, read_rgb
from vision.brands import BrandRefs, load_brands
from vision.logo_fusion import FusedLogoFinder, FusionConfig, crop_for
from vision.logo_matcher import LogoMatcher
from vision.synthetic import jpeg_reencode, paste_logo
from vision.types import Box, FusedLogoMatch, LogoMatch, box_iou

BRANDS = REPO / "examples" / "rules" / "brands"
MIN_IOU = 0.7


class FixedDetections:
    """Returns the same detections for every frame (the LogoCandidates interface)."""

    brands = ("acme", "rival")

    def __init__(self, detections: Sequence[LogoMatch]) -> None:
        self.detections = list(detections)
        self.calls = 0

    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]:
        self.calls += 1
        return [list(self.detections) for _ in images]


def _sources(m: LogoMatch) -> tuple[str, ...]:
    """Who saw it: a FusedLogoMatch's sources, a plain LogoMatch's method alone."""
    return m.sources if isinstance(m, FusedLogoMatch) else (m.method,)


def _det(brand: str, score: float, box: Box) -> LogoMatch:
    return LogoMatch(brand, score, box, method="detector")


def _shift(box: Box, dx: float, dy: float) -> Box:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


@pytest.fixture(scope="module")
def refs() -> dict[str, BrandRefs]:
    return {r.brand: r for r in load_brands(BRANDS)}


@pytest.fixture(scope="module")
def matcher() -> LogoMatcher:
    return LogoMatcher.from_brands_dir(BRANDS)


def _rgba(ref: BrandRefs) -> np.ndarray:
    mask = ref.masks[0]
    alpha = np.full(ref.images[0].shape[:2], 255, np.uint8) if mask is None else mask
    return np.dstack([ref.images[0], alpha])


@pytest.fixture(scope="module")
def zidane(real_images) -> np.ndarray:
    return read_rgb(real_images["zidane"])


@pytest.fixture(scope="module")
def big_rival(refs, zidane) -> tuple[np.ndarray, Box]:
    """rival's logo 20% of the frame wide: the matcher finds it on the full frame."""
    image, box = paste_logo(zidane, _rgba(refs["rival"]), center=(0.3, 0.6), scale=0.2)
    return jpeg_reencode(image, 85), box


@pytest.fixture(scope="module")
def small_rival(refs, zidane) -> tuple[np.ndarray, Box]:
    """rival's logo 7% wide, blurred and JPEG'd: the full-frame matcher misses it, the
    matcher on a padded crop finds it (measured; see CROP_MIN_SIDE)."""
    image, box = paste_logo(
        zidane, _rgba(refs["rival"]), center=(0.3, 0.6), scale=0.07, rotation_deg=5.0
    )
    return jpeg_reencode(cv2.GaussianBlur(image, (0, 0), 0.7), 80), box


def test_same_logo_seen_by_both_is_one_match_with_the_matchers_box(matcher, big_rival) -> None:
    image, box = big_rival
    (feature,) = [m for m in matcher.match(image) if m.brand == "rival"]
    det = _det("rival", 0.97, _shift(box, 0.02, 0.01))
    assert box_iou(det.box, feature.box) >= 0.3
    found = FusedLogoFinder(matcher, FixedDetections([det])).match(image)
    assert len(found) == 1
    (m,) = found
    assert m.brand == "rival" and m.box == feature.box and box_iou(m.box, box) >= MIN_IOU
    assert m.method == "features" and m.sources == ("features", "detector")
    assert m.score == max(feature.score, 0.97)


def test_detector_only_hit_on_nothing_is_dropped_unless_trusted(matcher, big_rival) -> None:
    image, _ = big_rival
    ghost = _det("acme", 0.9, (0.70, 0.10, 0.85, 0.16))  # Zidane's background, no logo
    found = FusedLogoFinder(matcher, FixedDetections([ghost])).match(image)
    assert [(m.brand, _sources(m)) for m in found] == [("rival", ("features",))]
    trusting = FusedLogoFinder(
        matcher, FixedDetections([ghost]), FusionConfig(keep_unverified_above=0.8)
    )
    got = trusting.match(image)
    assert [(m.brand, _sources(m), m.box) for m in got if m.brand == "acme"] == [
        ("acme", ("detector",), ghost.box)
    ]
    strict = FusedLogoFinder(
        matcher, FixedDetections([ghost]), FusionConfig(keep_unverified_above=0.95)
    )
    assert [m.brand for m in strict.match(image)] == ["rival"]


def test_small_logo_missed_by_the_matcher_is_confirmed_on_its_crop(matcher, small_rival) -> None:
    image, box = small_rival
    assert not [m for m in matcher.match(image) if box_iou(m.box, box) > 0.3]
    det = _det("rival", 0.6, box)
    (m,) = FusedLogoFinder(matcher, FixedDetections([det])).match(image)
    assert m.brand == "rival" and m.sources == ("features", "detector")
    assert box_iou(m.box, box) >= MIN_IOU and m.score == 0.6
    # A verification threshold above what the crop scores drops it.
    crop, _ = crop_for(image, det.box, FusionConfig().crop_pad)
    (on_crop,) = matcher.match(crop)
    high = FusionConfig(verify_min_score=min(1.0, on_crop.score + 0.01))
    assert FusedLogoFinder(matcher, FixedDetections([det]), high).match(image) == []


def test_detection_of_the_wrong_brand_is_not_confirmed(matcher, big_rival) -> None:
    image, box = big_rival
    wrong = _det("acme", 0.8, box)
    found = FusedLogoFinder(matcher, FixedDetections([wrong])).match(image)
    assert [(m.brand, _sources(m)) for m in found] == [("rival", ("features",))]


def test_matcher_on_detections_only(matcher, refs, small_rival) -> None:
    image, small = small_rival
    # A second, big rival logo the detector does not report: this mode cannot find it.
    image, big = paste_logo(image, _rgba(refs["rival"]), center=(0.75, 0.35), scale=0.2)
    det = _det("rival", 0.6, small)
    cfg = FusionConfig(matcher_on_detections_only=True)
    found = FusedLogoFinder(matcher, FixedDetections([det]), cfg).match(image)
    assert len(found) == 1 and box_iou(found[0].box, small) >= MIN_IOU
    assert found[0].sources == ("features", "detector")
    full = FusedLogoFinder(matcher, FixedDetections([det])).match(image)
    assert sorted(round(box_iou(m.box, big), 1) >= MIN_IOU for m in full) == [False, True]
    assert FusedLogoFinder(matcher, FixedDetections([]), cfg).match(image) == []


def test_without_a_detector_the_finder_is_the_matcher(matcher, big_rival) -> None:
    image, _ = big_rival
    assert FusedLogoFinder(matcher).match_many([image, image]) == matcher.match_many([image, image])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fuse_iou": 0.0}, r"fuse_iou must be in \(0, 1\]"),
        ({"verify_min_score": 1.5}, r"verify_min_score must be in \(0, 1\]"),
        ({"keep_unverified_above": 0.0}, r"keep_unverified_above must be in \(0, 1\] or None"),
        ({"crop_pad": -0.1}, "crop_pad must be in 0..2"),
    ],
)
def test_fusion_config_errors(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FusionConfig(**kwargs)


def test_finder_construction_errors(matcher) -> None:
    class Other(FixedDetections):
        brands = ("acme", "zenith")

    with pytest.raises(ValueError, match=r"detector brands \['acme', 'zenith'\] differ"):
        FusedLogoFinder(matcher, Other([]))
    with pytest.raises(ValueError, match="matcher_on_detections_only needs a detector"):
        FusedLogoFinder(matcher, None, FusionConfig(matcher_on_detections_only=True))
    with pytest.raises(ValueError, match=r"images\[1\] must be an \(H, W, 3\) uint8"):
        FusedLogoFinder(matcher, FixedDetections([])).match_many([np.zeros((8, 8, 3), np.uint8), 3])


@pytest.mark.parametrize(
    "method, sources",
    [
        ("detector", ("features", "detector")),
        ("features", ("features",)),
        ("features", ("features", "features")),
        ("features", ("features", "ocr")),
    ],
)
def test_fused_logo_match_sources_are_checked(method: str, sources: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="FusedLogoMatch.sources must name 2"):
        FusedLogoMatch("acme", 0.5, (0, 0, 1, 1), method=method, sources=sources)  # type: ignore[arg-type]
