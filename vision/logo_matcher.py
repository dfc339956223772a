"""Reference-logo matching without training: SIFT features + ratio test + RANSAC homography.

Why this exists next to a trained logo detector: an advertiser who drops a new logo into
``brands/<brand>/`` gets matches on the next frame, with no training run. Local features are
exact about *which* logo they saw (a competitor's similar colours do not fool them) and the
homography gives a real outline, so the box is where the logo is, not where a crop scored well.

At construction, per reference image ("view"): SIFT features of the logo at a few sizes
(``REF_SCALES``) and, for a transparent logo, over a few backgrounds (``TRANSPARENT_FILLS``),
keypoints only on the logo (its alpha mask), all stacked into one descriptor set.

Per frame:

1. grey copy, downscaled so its longer side is at most ``WORK_MAX_SIDE`` px;
2. SIFT keypoints + descriptors, once per frame, shared by every brand;
3. per view: nearest reference descriptors of each frame descriptor, Lowe's ratio test against
   the nearest descriptor at *another place* of the logo (variants of one place do not compete);
4. two-stage RANSAC: a similarity (2-point samples: robust at 90% wrong matches), then a
   homography over its inliers; then sanity checks that a real, flat logo passes and chance
   alignments do not (convex, not mirrored, not tiny, bounded aspect and perspective change,
   inliers spread over the logo rather than one letter, mostly inside the frame);
5. the instance's matches are removed and step 4 repeats, so one frame can show the same
   brand more than once (up to ``MAX_INSTANCES_PER_VIEW``);
6. per brand, overlapping finds from different reference images are merged (highest score wins).

Known limit (measured, see tests): a *transparent* text-only logo shown directly over a busy
scene loses most of its descriptors to the background (every keypoint sits on a letter's edge);
such logos are found reliably only when about 300+ work px wide or shown on a plain plate. The
trained logo detector covers that case.

Coordinates: ``LogoMatch.box`` is the bounding box of the projected convex hull of the logo
(the reference's opaque region), normalized ``xyxy`` 0..1 of the frame, clipped to it.
Score: 0..1 from the inlier count and the inlier ratio (see :func:`_score`): a clear match is
above 0.6; a frame without the logo yields no match at all (chance rarely reaches
``MIN_INLIERS`` consistent matches, and never passes the geometry checks as well).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.brands import BrandRefs, load_brands
from vision.errors import MediaError
from vision.types import Box, LogoMatch, box_iou, check_rgb_image

WORK_MAX_SIDE = 960
"""Frames are matched on a grey copy whose longer side is at most this (px). SIFT cost grows
with the pixel count; at 960 a logo 1/5 of the frame wide still spans ~190 px, plenty of
keypoints, and a 4K frame costs what a 960 px one does."""

REF_MAX_SIDE = 640
"""Reference logos are downscaled to this longer side (px) before features are computed: a
4000 px brand-book export would give thousands of fine-detail keypoints no frame shows."""

REF_SCALES = (1.0, 0.5, 0.25)
"""Each reference is also described at these fractions of its size. SIFT is scale-invariant in
theory; in practice a logo shown small has lost the fine detail (and gained the blur) of a
downscale, and a reference downscaled the same way matches it far better."""

MIN_VARIANT_SIDE = 48
"""A scaled variant whose shorter side falls below this (px) is skipped: no features left."""

TRANSPARENT_FILLS: tuple[int | tuple[float, int], ...] = (255, 0, 128, (2.0, 1), (6.0, 2))
"""What a transparent logo is composited over before its features are computed: white, black,
mid grey and two smooth random textures (blur sigma px, seed). Nearly every keypoint of a
logo sits on its outline, so its descriptor sees the background; on screen that background is
anything. Several fills give each outline keypoint several descriptors, one of which is near
what the frame shows (measured on logo2.png over real photos: ~2x the correct matches)."""

FRAME_MAX_FEATURES = 6000
"""Strongest SIFT keypoints kept per frame: bounds matching time. Busy frames need the room:
ultralytics' bus.jpg has ~5700 at 960 px, and a cap of 3000 dropped a pasted logo's keypoints
(the strongest responses were all on the street)."""

REF_MAX_FEATURES = 1000
"""Strongest SIFT keypoints kept per reference variant."""

MIN_REF_FEATURES = 12
"""A reference with fewer keypoints than this cannot be matched reliably (a plain shape, or
too small): refused at construction with the file named."""

RATIO = 0.8
"""Lowe's ratio test: a frame keypoint matches a reference keypoint only when its nearest
reference descriptor is clearly closer than the nearest one *at another place of the logo*
(d1 < RATIO * d2). Variants describe one place several times; those are not competitors."""

RATIO_NEIGHBOURS = 8
"""Nearest reference descriptors fetched per frame keypoint to find that second place."""

SAME_PLACE_PX = 4.0
"""Reference keypoints closer than this (reference px) describe the same place of the logo."""

MIN_GOOD_MATCHES = 10
"""Fewer ratio-test survivors than this for a reference: skip RANSAC (nothing to find)."""

MIN_INLIERS = 10
"""Fewest homography inliers for a match. On logo-free photos chance reaches 4-7 consistent
matches that also pass the geometry checks below; a logo 1/4 of a frame wide gives 12-60."""

SIMILARITY_REPROJ_PX = 8.0
"""First RANSAC stage: a similarity (shift, rotation, uniform scale; 2 points per sample, so
it finds a logo among 90% wrong matches in a few hundred iterations), threshold in work px.
Loose, so that mild perspective keeps its inliers for the homography stage."""

RANSAC_REPROJ_PX = 4.0
"""Second stage: homography RANSAC over the similarity's inliers, threshold in work px."""

MAX_PERSPECTIVE_DEVIATION = 0.15
"""The homography may move the outline's corners at most this fraction of its diagonal away
from where the similarity puts them; beyond that it was bent by wrong matches."""

RANSAC_MAX_ITERS = 2000
"""RANSAC iterations per stage: bounded."""

RANSAC_CONFIDENCE = 0.995
"""RANSAC confidence used to stop early."""

MIN_QUAD_AREA_PX = 24 * 24
"""Smallest projected logo, in work-scale px²: smaller is below what features resolve."""

MAX_ASPECT_CHANGE = 1.6
"""Largest factor by which the projected logo's aspect ratio may differ from the reference's:
screens show logos flat or mildly tilted, never squashed."""

MAX_SIDE_RATIO = 2.0
"""Largest ratio of opposite sides' lengths of the projected outline (perspective bound)."""

MIN_INLIER_SPREAD = 0.1
"""Inliers' convex hull must cover at least this fraction of the reference logo's area: a
homography from points on one letter extrapolates wildly and is usually a coincidence."""

MIN_VISIBLE_FRACTION = 0.3
"""At least this fraction of the projected outline must lie inside the frame."""

MAX_INSTANCES_PER_VIEW = 3
"""Most instances of one reference found in one frame (each costs one more RANSAC run)."""

SAME_INSTANCE_IOU = 0.5
"""Two finds of the same brand whose boxes overlap more than this are one logo."""

SCORE_INLIER_SCALE = 10.0
"""Inliers beyond ``MIN_INLIERS`` at which the count part of the score reaches 1 - 1/e."""

CLEAR_INLIER_RATIO = 0.25
"""Inlier ratio (inliers / ratio-test survivors) at and above which the ratio part is 1."""

MIN_FRAME_SIDE = 16
"""Frames with a shorter side than this (px) hold no findable logo; they return no match."""

DEFAULT_WORKERS = min(4, os.cpu_count() or 1)
"""Threads used by :meth:`LogoMatcher.match_many` (OpenCV releases the GIL in SIFT/matching)."""


@dataclass(frozen=True, eq=False)
class RefView:
    """Precomputed features of one reference image, all its variants stacked.

    ``points``: (N, 2) float32 keypoint positions (x, y) in the reference's work-scale pixels
    (after the ``REF_MAX_SIDE`` downscale), whatever variant they came from. ``descriptors``:
    (N, 128) float32 SIFT. ``outline``: (4, 2) float32 corners of the logo's opaque region,
    clockwise from top-left, same pixels (geometry checks). ``hull``: (M, 2) float32 convex
    hull of the opaque region (the box is the projected hull's bounds: tight around a rotated
    text logo, where the rotated rectangle's bounds would add the transparent corners). ``area``: the logo's area there, px². ``path``: the
    file, for messages.
    """

    brand: str
    path: Path
    points: np.ndarray
    descriptors: np.ndarray
    outline: np.ndarray
    hull: np.ndarray
    area: float


def _grey(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """RGB uint8 -> grey uint8 with the longer side <= max_side; returns (grey, scale)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    s = min(1.0, max_side / max(h, w))
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey, s


_local = threading.local()


def _sift(max_features: int) -> cv2.SIFT:
    """One SIFT object per thread and feature budget (OpenCV objects are not shared safely)."""
    cache = getattr(_local, "sift", None)
    if cache is None:
        cache = _local.sift = {}
    if max_features not in cache:
        cache[max_features] = cv2.SIFT.create(nfeatures=max_features)
    return cache[max_features]


def _fill(shape: tuple[int, int], fill: int | tuple[float, int]) -> np.ndarray:
    """A (h, w) float32 background: a constant grey, or smooth noise (sigma px, seed) 0..255."""
    if isinstance(fill, int):
        return np.full(shape, float(fill), np.float32)
    sigma, seed = fill
    noise = np.random.default_rng(seed).uniform(0.0, 255.0, shape).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
    lo, hi = float(blurred.min()), float(blurred.max())
    return (blurred - lo) * (255.0 / max(hi - lo, 1e-6))


def reference_view(brand: str, path: Path, image: np.ndarray, mask: np.ndarray | None) -> RefView:
    """One reference image's features at every scale (and fill, for a masked logo).

    Raises MediaError naming ``path`` when too few features are found to match the logo;
    ``vision.brands.check_reference`` runs this for the rules checker.
    """
    grey, s = _grey(image, REF_MAX_SIDE)
    h, w = grey.shape
    alpha = None
    if mask is not None:
        alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) if s < 1.0 else mask
        on = alpha >= 128
        ys, xs = np.nonzero(on)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        area = float(np.count_nonzero(on))
        edge = cv2.findNonZero(on.astype(np.uint8))
        hull = cv2.convexHull(edge).reshape(-1, 2).astype(np.float32)
        # Pixel (x, y) covers [x, x + 1): push hull points out to the pixels' far corners.
        hull = hull + (hull > hull.mean(axis=0)).astype(np.float32)
    else:
        x0, y0, x1, y1 = 0, 0, w, h
        area = float(w * h)
        hull = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    points: list[np.ndarray] = []
    descs: list[np.ndarray] = []
    for scale in REF_SCALES:
        if min(h, w) * scale < MIN_VARIANT_SIDE and scale < 1.0:
            continue
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        g = grey if scale == 1.0 else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        variants: list[tuple[np.ndarray, np.ndarray | None]]  # (grey image, keypoint mask)
        if alpha is None:
            variants = [(g, None)]
        else:
            a = alpha if scale == 1.0 else cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
            kp_mask = np.where(a >= 128, 255, 0).astype(np.uint8)
            af = a.astype(np.float32) / 255.0
            variants = [
                (
                    np.clip(g * af + _fill(g.shape, f) * (1.0 - af), 0, 255).astype(np.uint8),
                    kp_mask,
                )
                for f in TRANSPARENT_FILLS
            ]
        for img, m in variants:
            kps, desc = _sift(REF_MAX_FEATURES).detectAndCompute(img, m)
            if desc is None or not kps:
                continue
            # Keypoints back to the scale-1 reference pixels (pixel centres line up).
            pts = (np.array([k.pt for k in kps], np.float32) + 0.5) / scale - 0.5
            points.append(pts)
            descs.append(desc.astype(np.float32))
    n = sum(len(p) for p in points)
    if n < max(MIN_REF_FEATURES, RATIO_NEIGHBOURS):
        raise MediaError(
            f"{path}: only {n} features found in brand {brand!r}'s reference logo (need "
            f"{max(MIN_REF_FEATURES, RATIO_NEIGHBOURS)}); use a larger, more detailed image"
        )
    outline = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    return RefView(brand, path, np.vstack(points), np.vstack(descs), outline, hull, area)


def _ratio_test(desc: np.ndarray, view: RefView) -> tuple[np.ndarray, np.ndarray]:
    """Frame descriptors (N, 128) vs one reference -> (frame idx, ref idx) of the survivors.

    The second-nearest neighbour is the nearest one at a *different place* of the logo (more
    than SAME_PLACE_PX away); when all fetched neighbours sit at one place, the farthest
    fetched distance stands in for it (the true second is at least that far).
    """
    k = min(RATIO_NEIGHBOURS, len(view.descriptors))
    dist, idx = cv2.batchDistance(desc, view.descriptors, cv2.CV_32F, normType=cv2.NORM_L2, K=k)
    pos = view.points[idx]  # (N, K, 2)
    far = np.linalg.norm(pos - pos[:, :1], axis=2) > SAME_PLACE_PX  # (N, K)
    far[:, -1] = True  # fallback: the farthest fetched neighbour
    second = np.take_along_axis(dist, far.argmax(axis=1)[:, None], axis=1)[:, 0]
    ok = (dist[:, 0] < RATIO * second) & (idx[:, 0] >= 0)
    q = np.flatnonzero(ok)
    return q, idx[q, 0]


def _quad_area(q: np.ndarray) -> float:
    """Signed shoelace area of a polygon (N, 2); positive for clockwise in image coordinates."""
    x, y = q[:, 0].astype(np.float64), q[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _is_convex_same_orientation(q: np.ndarray) -> bool:
    """True when the quad is strictly convex and keeps the reference's (clockwise) winding."""
    edges = np.roll(q, -1, axis=0) - q
    nxt = np.roll(edges, -1, axis=0)
    cross = edges[:, 0] * nxt[:, 1] - edges[:, 1] * nxt[:, 0]
    return bool(np.all(cross > 0))


def _plausible(
    h: np.ndarray, view: RefView, ref_inliers: np.ndarray, frame_w: int, frame_h: int
) -> np.ndarray | None:
    """Return the projected outline (4, 2) if the homography is one a real logo could have."""
    if not np.all(np.isfinite(h)):
        return None
    ones = np.ones((4, 1), np.float64)
    pts = np.hstack([view.outline.astype(np.float64), ones]) @ h.T
    if np.any(pts[:, 2] <= 1e-9):
        return None  # part of the logo maps behind the camera: no physical view does that
    quad = pts[:, :2] / pts[:, 2:3]
    if not _is_convex_same_orientation(quad):
        return None
    area = _quad_area(quad)
    if area < MIN_QUAD_AREA_PX:
        return None
    sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)  # top, right, bottom, left
    if max(sides[0], sides[2]) > MAX_SIDE_RATIO * min(sides[0], sides[2]):
        return None
    if max(sides[1], sides[3]) > MAX_SIDE_RATIO * min(sides[1], sides[3]):
        return None
    ow = view.outline[1, 0] - view.outline[0, 0]
    oh = view.outline[2, 1] - view.outline[1, 1]
    aspect_ref = float(ow / oh)
    aspect = float((sides[0] + sides[2]) / max(sides[1] + sides[3], 1e-9))
    change = aspect / aspect_ref
    if not (1.0 / MAX_ASPECT_CHANGE <= change <= MAX_ASPECT_CHANGE):
        return None
    hull = cv2.convexHull(ref_inliers.astype(np.float32))
    if abs(cv2.contourArea(hull)) < MIN_INLIER_SPREAD * view.area:
        return None
    clipped, _ = cv2.intersectConvexConvex(
        quad.astype(np.float32),
        np.array([[0, 0], [frame_w, 0], [frame_w, frame_h], [0, frame_h]], np.float32),
    )
    if clipped < MIN_VISIBLE_FRACTION * area:
        return None
    return quad


def _score(inliers: int, good: int) -> float:
    """Map (inlier count, ratio-test survivors) to 0..1.

    Count part: 1 - exp(-(n - MIN_INLIERS + 1) / SCORE_INLIER_SCALE), so the threshold case
    scores ~0.1 and 2x MIN_INLIERS (20 inliers) ~0.67. Ratio part: min(1, n / good /
    CLEAR_INLIER_RATIO), which pulls down matches drowned in inconsistent ones.
    """
    count = 1.0 - math.exp(-(inliers - MIN_INLIERS + 1) / SCORE_INLIER_SCALE)
    ratio = min(1.0, inliers / max(good, 1) / CLEAR_INLIER_RATIO)
    return float(min(1.0, max(0.0, count * ratio)))


class LogoMatcher:
    """Finds brands' reference logos in frames. Construction computes every reference's
    features once; :meth:`match` is then safe to call from several threads at once."""

    def __init__(self, refs: Sequence[BrandRefs], *, workers: int = DEFAULT_WORKERS) -> None:
        if not refs:
            raise ValueError("LogoMatcher needs at least one brand")
        names = [r.brand for r in refs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"brands given more than once: {', '.join(dupes)}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._brands = tuple(names)
        self._views = tuple(
            reference_view(r.brand, p, img, m)
            for r in refs
            for img, m, p in zip(r.images, r.masks, r.paths, strict=True)
        )
        self._workers = workers

    @classmethod
    def from_brands_dir(cls, path: Path | str, *, workers: int = DEFAULT_WORKERS) -> LogoMatcher:
        """Load ``path/<brand>/*.png|jpg|jpeg|webp`` (see :mod:`vision.brands`). MediaError on
        a missing directory, an empty brand folder or an unreadable/featureless logo."""
        return cls(load_brands(Path(path)), workers=workers)

    @property
    def brands(self) -> tuple[str, ...]:
        """Brand names (folder names), sorted as loaded."""
        return self._brands

    @property
    def views(self) -> tuple[RefView, ...]:
        """Every reference image's precomputed features (for inspection and tests)."""
        return self._views

    def match(self, image: np.ndarray) -> list[LogoMatch]:
        """Find every brand's logo in one (H, W, 3) uint8 RGB frame.

        Returns matches sorted by score, highest first; at most one per visible logo instance.
        Raises ValueError for an array that is not (H, W, 3) uint8.
        """
        check_rgb_image(image)
        if min(image.shape[:2]) < MIN_FRAME_SIDE:
            return []
        grey, _ = _grey(image, WORK_MAX_SIDE)
        fh, fw = grey.shape
        kps, desc = _sift(FRAME_MAX_FEATURES).detectAndCompute(grey, None)
        if desc is None or len(kps) < MIN_GOOD_MATCHES:
            return []
        frame_pts = np.array([k.pt for k in kps], np.float32)
        desc = desc.astype(np.float32)
        found: list[tuple[str, float, Box]] = []
        for view in self._views:
            found += _match_view(view, desc, frame_pts, fw, fh)
        return _merge(found)

    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]:
        """:meth:`match` over a batch, on up to ``workers`` threads; results in input order."""
        if len(images) <= 1 or self._workers == 1:
            return [self.match(im) for im in images]
        with ThreadPoolExecutor(max_workers=min(self._workers, len(images))) as pool:
            return list(pool.map(self.match, images))


def _match_view(
    view: RefView, desc: np.ndarray, frame_pts: np.ndarray, fw: int, fh: int
) -> list[tuple[str, float, Box]]:
    """Every instance of one reference in one frame, as (brand, score, box)."""
    q, r = _ratio_test(desc, view)
    if len(q) < MIN_GOOD_MATCHES:
        return []
    src, dst = view.points[r], frame_pts[q]
    good = len(q)
    out: list[tuple[str, float, Box]] = []
    for _ in range(MAX_INSTANCES_PER_VIEW):
        if len(src) < MIN_INLIERS:
            break
        found = _fit(src, dst, view.outline)
        if found is None:
            break
        h, inl = found
        quad = _plausible(h, view, src[inl], fw, fh)
        if quad is None:
            break
        hull = np.hstack([view.hull.astype(np.float64), np.ones((len(view.hull), 1))]) @ h.T
        hull = hull[:, :2] / hull[:, 2:3]  # _plausible checked every outline w > 0: hull's too
        x0, y0 = hull.min(axis=0)
        x1, y1 = hull.max(axis=0)
        box = (max(0.0, x0 / fw), max(0.0, y0 / fh), min(1.0, x1 / fw), min(1.0, y1 / fh))
        out.append((view.brand, _score(int(inl.sum()), good), box))
        # Drop this instance's matches (inliers and anything inside its outline), then look for
        # another instance among the rest.
        poly = quad.astype(np.float32)
        inside = np.array(
            [cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0 for x, y in dst], bool
        )
        keep = ~(inl | inside)
        src, dst = src[keep], dst[keep]
        good = len(src)
    return out


def _fit(
    src: np.ndarray, dst: np.ndarray, outline: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Two-stage RANSAC reference -> frame: similarity, then homography over its inliers.

    The homography is kept only when it stays close to the similarity (outline corners within
    MAX_PERSPECTIVE_DEVIATION of the outline's diagonal); otherwise a few wrong matches among
    the candidates have bent it, and the similarity with its own inliers is the answer.
    Returns (3x3 matrix, (N,) bool inlier mask over ``src``) or None when fewer than
    MIN_INLIERS agree.
    """
    sim, sim_mask = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=SIMILARITY_REPROJ_PX,
        maxIters=RANSAC_MAX_ITERS,
        confidence=RANSAC_CONFIDENCE,
    )
    if sim is None or sim_mask is None:
        return None
    cand = np.flatnonzero(sim_mask.ravel())
    if len(cand) < MIN_INLIERS:
        return None
    s3 = np.vstack([sim, [0.0, 0.0, 1.0]])
    sim_inl = np.zeros(len(src), bool)
    sim_inl[cand] = True
    h, h_mask = cv2.findHomography(
        src[cand],
        dst[cand],
        cv2.RANSAC,
        RANSAC_REPROJ_PX,
        maxIters=RANSAC_MAX_ITERS,
        confidence=RANSAC_CONFIDENCE,
    )
    if h is None or h_mask is None or int(h_mask.sum()) < MIN_INLIERS:
        return s3, sim_inl
    corners = np.hstack([outline.astype(np.float64), np.ones((4, 1))])
    by_sim = corners @ s3.T
    by_h: np.ndarray = corners @ h.T
    if np.any(by_h[:, 2] <= 1e-9):
        return s3, sim_inl
    by_h = by_h[:, :2] / by_h[:, 2:3]
    diag = float(np.linalg.norm(by_sim[2, :2] - by_sim[0, :2]))
    if (
        float(np.max(np.linalg.norm(by_h - by_sim[:, :2], axis=1)))
        > MAX_PERSPECTIVE_DEVIATION * diag
    ):
        return s3, sim_inl
    inl = np.zeros(len(src), bool)
    inl[cand[h_mask.ravel().astype(bool)]] = True
    return h, inl


def _merge(found: list[tuple[str, float, Box]]) -> list[LogoMatch]:
    """Per brand, keep the best of overlapping finds (several reference images, one logo)."""
    found.sort(key=lambda f: f[1], reverse=True)
    kept: list[tuple[str, float, Box]] = []
    for brand, score, box in found:
        if any(b == brand and box_iou(box, kb) > SAME_INSTANCE_IOU for b, _, kb in kept):
            continue
        kept.append((brand, score, box))
    return [LogoMatch(brand=b, score=s, box=bx, method="features") for b, s, bx in kept]
