"""Shop the look: search the catalog per region of an image, not only for the whole picture.

A pin of a living room holds a sofa, a lamp and a rug; a whole-image query finds living rooms.
Querying by the *objects* finds the sofa, the lamp and the rug (Pinterest's lesson). Regions
come from the detectors' boxes when there are any; otherwise from a **colour-contrast saliency**
map (frequency-tuned saliency, Achanta et al., CVPR 2009, measured against the image's border
colour: products are photographed against a background, and the border is mostly background),
and when nothing stands out, from a fixed grid. (The spectral-residual map of Hou & Zhang was
tried first: it marks the *details* of an object and, for objects filling a third of the
picture as products do, found one blob inside one of two objects.) Each region is cropped, all crops are embedded in one
batch, and each gets its own results with its box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vision.catalog.limits import MAX_REGIONS, MIN_REGION_AREA, REGION_CROP_SIDE_PX
from vision.catalog.query import RegionHits
from vision.types import Box, Detection, box_area, box_iou, check_box, check_rgb_image

if TYPE_CHECKING:
    from vision.catalog.filters import CatalogFilter
    from vision.catalog.store import Catalog, VisualModel

SALIENCY_SIDE_PX = 64
"""The saliency map is computed on the image shrunk to this width: regions are objects, not
textures, and 64 px keeps the map cheap (a few hundred microseconds)."""

SALIENCY_BLUR_PX = 1.0
"""Gaussian sigma, in map pixels, applied before the contrast (the method's fine-detail cut)."""

MIN_SALIENT_CONTRAST = 12.0
"""Below this Lab distance from the background nothing is an object (sensor noise, JPEG)."""

SALIENCY_THRESHOLD = 1.0
"""A pixel is salient when its saliency is at least this many times the map's mean."""

REGION_MARGIN = 0.1
"""Salient blobs are grown by this fraction of their size on each side before cropping: the
blob is the object's most unexpected part, the crop should hold the whole object."""

DUPLICATE_REGION_IOU = 0.7
"""Two proposed regions overlapping more than this are one region (the better one is kept)."""

GRID_BOXES: tuple[Box, ...] = (
    (0.0, 0.0, 0.5, 0.5),
    (0.5, 0.0, 1.0, 0.5),
    (0.0, 0.5, 0.5, 1.0),
    (0.5, 0.5, 1.0, 1.0),
    (0.25, 0.25, 0.75, 0.75),
)
"""The fallback when neither detectors nor saliency find anything: quadrants and the centre."""


@dataclass(frozen=True)
class Region:
    """A part of an image to search: normalized xyxy ``box``, where it came from, a label."""

    box: Box
    source: str
    label: str = ""
    score: float = 1.0


def contrast_saliency(image: np.ndarray) -> np.ndarray:
    """Saliency of an RGB image: each pixel's CIELAB distance (OpenCV's 8-bit Lab units) from
    the border's median colour after a light blur, (h, w) float32 at ``SALIENCY_SIDE_PX`` width."""
    check_rgb_image(image)
    h, w = image.shape[:2]
    small_h = max(8, round(SALIENCY_SIDE_PX * h / w))
    small = cv2.resize(image, (SALIENCY_SIDE_PX, small_h), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    blurred = cv2.GaussianBlur(lab, (0, 0), sigmaX=SALIENCY_BLUR_PX)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    return np.linalg.norm(blurred - np.median(border, axis=0), axis=2).astype(np.float32)


def salient_regions(image: np.ndarray, max_regions: int = MAX_REGIONS) -> list[Region]:
    """Boxes around the salient blobs of ``image``, biggest saliency mass first."""
    sal = contrast_saliency(image)
    if float(sal.max()) < MIN_SALIENT_CONTRAST:
        return []  # nothing differs from the background enough to be an object
    above = (sal >= SALIENCY_THRESHOLD * float(sal.mean())).astype(np.uint8)
    mask = cv2.morphologyEx(above, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # drop specks
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sh, sw = sal.shape
    regions: list[Region] = []
    for i in range(1, n):
        x, y, bw, bh, _ = (int(v) for v in stats[i])
        mx, my = bw * REGION_MARGIN, bh * REGION_MARGIN
        box = check_box(
            (
                max(0.0, (x - mx) / sw),
                max(0.0, (y - my) / sh),
                min(1.0, (x + bw + mx) / sw),
                min(1.0, (y + bh + my) / sh),
            )
        )
        if box_area(box) >= MIN_REGION_AREA:
            mass = float(sal[y : y + bh, x : x + bw].sum())
            regions.append(Region(box=box, source="saliency", score=mass))
    regions.sort(key=lambda r: -r.score)
    top = regions[0].score if regions else 1.0
    return [Region(r.box, r.source, score=r.score / top) for r in _dedup(regions)[:max_regions]]


def _dedup(regions: list[Region]) -> list[Region]:
    kept: list[Region] = []
    for r in regions:
        if all(box_iou(r.box, k.box) <= DUPLICATE_REGION_IOU for k in kept):
            kept.append(r)
    return kept


def propose_regions(
    image: np.ndarray,
    detections: Sequence[Detection] | None = None,
    *,
    max_regions: int = MAX_REGIONS,
) -> list[Region]:
    """Regions to search: the detections' boxes (best score first), else salient blobs, else
    the grid. Boxes under ``MIN_REGION_AREA`` of the image are skipped; near-identical boxes
    (IoU above ``DUPLICATE_REGION_IOU``) are searched once."""
    check_rgb_image(image)
    if detections:
        ordered = sorted(detections, key=lambda d: -d.score)
        regions = [
            Region(box=d.box, source="detector", label=d.label, score=d.score)
            for d in ordered
            if d.area >= MIN_REGION_AREA
        ]
        if regions:
            return _dedup(regions)[:max_regions]
    regions = salient_regions(image, max_regions)
    if regions:
        return regions
    return [Region(box=b, source="grid") for b in GRID_BOXES][:max_regions]


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The pixels of a normalized xyxy box (at least one pixel each way)."""
    h, w = image.shape[:2]
    x0, y0 = int(box[0] * w), int(box[1] * h)
    x1, y1 = max(x0 + 1, round(box[2] * w)), max(y0 + 1, round(box[3] * h))
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def shop_the_look(
    catalog: Catalog,
    image: np.ndarray,
    model: VisualModel,
    *,
    detections: Sequence[Detection] | None = None,
    k: int = 10,
    filter: CatalogFilter | None = None,
    dedup_cosine: float | None = None,
    max_regions: int = MAX_REGIONS,
) -> list[RegionHits]:
    """Similar items per region of ``image`` (see ``propose_regions``), one batch of crops.

    Regions whose crop is under ``REGION_CROP_SIDE_PX`` on a side are skipped (too few pixels
    to describe an object). Returns one ``RegionHits`` per searched region, in region order.
    """
    regions = [
        r
        for r in propose_regions(image, detections, max_regions=max_regions)
        if min(crop(image, r.box).shape[:2]) >= REGION_CROP_SIDE_PX
    ]
    if not regions:
        return []
    crops = [crop(image, r.box) for r in regions]
    results = catalog.search_images(crops, model, k, filter=filter, dedup_cosine=dedup_cosine)
    return [
        RegionHits(box=r.box, source=r.source, hits=tuple(hits), label=r.label)
        for r, hits in zip(regions, results, strict=True)
    ]
