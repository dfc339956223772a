"""Synthetic logo frames and the YOLO data set they make: reference logos on real backgrounds.

Why: an advertiser gives a few reference images per brand, never thousands of labelled frames.
Pasting the references onto real pictures, warped and degraded the way screens show logos,
gives as many labelled frames as training needs, with exact boxes for free.

One frame (:func:`lay_out`, then :func:`finish`):

1. a random crop of a background, resized to one of ``FRAME_SIZES``;
2. 0..``max_logos`` brand logos: colour jitter, perspective, rotation, scale log-uniform in
   ``min_scale..max_scale`` of the frame's width, never overlapping one another; some partly
   occluded by a patch of the background or a solid block;
3. 0..``max_distractors`` *negatives* with no label: random text in random colours (the
   look of a word mark), and "scrambles" of a brand's reference (its tiles shuffled and
   recoloured: the same strokes and texture, not the logo), so the detector learns the logo's
   shape rather than "some text" or "this brand's colours";
4. finishing: blur of some logos, sensor noise, JPEG re-encoding.

Labels are the boxes :func:`vision.synthetic.paste_logo` returns: tight around the pasted
logo's visible pixels (opacity > 0.5), clipped to the frame. An occluder is drawn inside a
logo's box and never covers a whole side, so the box stays the logo's full extent (what a
person labelling an occluded logo draws). Everything random comes from one
``numpy.random.Generator`` per frame, seeded by ``(seed, index)``: the same seed gives the
same frames and labels, byte for byte, whatever ``n_images`` is.

:func:`write_yolo_dataset` writes the ultralytics layout::

    out/images/{train,val}/000000.jpg   out/labels/{train,val}/000000.txt   out/data.yaml

Each label line is ``class cx cy w h`` normalized 0..1 (YOLO txt); a frame without a logo
has an empty label file (a negative). ``data.yaml`` names the classes in brand order.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vision.brands import BrandRefs
from vision.logo_training.backgrounds import Background
from vision.synthetic import paste_logo
from vision.types import Box

FRAME_SIZES: tuple[tuple[int, int], ...] = ((640, 360), (640, 480), (512, 512), (480, 640))
"""(width, height) of generated frames: 16:9 and 4:3 video, square and portrait pins."""

MIN_LOGO_SIDE_PX = 6
"""A logo's shorter side is never pasted smaller than this (px): below it nothing is left
that a detector at the training size could learn from."""

PLACEMENT_TRIES = 20
"""Random positions tried per logo before it is left out (the frame is full)."""

LABEL_DECIMALS = 6
"""Decimals of the YOLO label values (1e-6 of a frame: far below a pixel)."""

IMAGE_JPEG_QUALITY = 95
"""Quality the data set's images are written at (the JPEG *noise* is applied before)."""

TEXT_ALPHABET = string.ascii_letters + string.digits
"""Characters of the random word marks used as negatives."""

HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)
"""OpenCV's built-in fonts (no font file needed) for the negative word marks."""


@dataclass(frozen=True)
class ComposeConfig:
    """How frames are generated. Scales are logo width / frame width; probabilities 0..1;
    ``max_perspective``: corner jitter as a fraction of the logo's side; ``max_rotation_deg``:
    in-plane rotation bound (screens rarely show logos upside down); sigmas in px."""

    min_scale: float = 0.03
    max_scale: float = 0.35
    max_logos: int = 3
    p_no_logo: float = 0.15
    max_distractors: int = 2
    p_scramble: float = 0.5
    max_perspective: float = 0.18
    max_rotation_deg: float = 25.0
    p_occlusion: float = 0.25
    max_occlusion: float = 0.4
    p_blur: float = 0.35
    max_blur_sigma: float = 2.0
    p_noise: float = 0.3
    max_noise_sigma: float = 6.0
    p_jpeg: float = 0.8
    jpeg_quality: tuple[int, int] = (35, 95)
    brightness: float = 0.2
    contrast: float = 0.25
    saturation: float = 0.3
    channel_gain: float = 0.08

    def __post_init__(self) -> None:
        if not 0.0 < self.min_scale <= self.max_scale <= 1.0:
            raise ValueError(
                f"need 0 < min_scale <= max_scale <= 1, got {self.min_scale}, {self.max_scale}"
            )
        if self.max_logos < 1 or self.max_distractors < 0:
            raise ValueError("max_logos must be >= 1 and max_distractors >= 0")
        for name in ("p_no_logo", "p_scramble", "p_occlusion", "p_blur", "p_noise", "p_jpeg"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in 0..1, got {getattr(self, name)}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality must be 1 <= lo <= hi <= 100, got {self.jpeg_quality}")


@dataclass(frozen=True)
class Placed:
    """One pasted item: ``cls`` is the brand's index (-1 for a negative), ``box`` normalized
    xyxy of its visible pixels, ``blur_sigma`` the blur :func:`finish` gives its region (px)."""

    cls: int
    box: Box
    blur_sigma: float = 0.0
    kind: str = "logo"


@dataclass(frozen=True, eq=False)
class Layout:
    """A frame before finishing: the background crop, the image with everything pasted, and
    what was pasted where (``logos`` are labels; ``negatives`` are not)."""

    background: np.ndarray
    image: np.ndarray
    logos: tuple[Placed, ...]
    negatives: tuple[Placed, ...]


@dataclass(frozen=True, eq=False)
class Sample:
    """A finished frame: (H, W, 3) uint8 RGB ``image`` and its labels ``(cls, box)``."""

    image: np.ndarray
    labels: tuple[tuple[int, Box], ...]
    background: str = ""


@dataclass(frozen=True)
class YoloDataset:
    """What :func:`write_yolo_dataset` wrote: the ``data.yaml`` to train on and its counts."""

    root: Path
    data_yaml: Path
    names: tuple[str, ...]
    n_train: int
    n_val: int
    n_boxes: int
    n_negative_images: int = 0
    backgrounds: tuple[str, ...] = field(default=())


def _rgba(ref: BrandRefs, k: int) -> np.ndarray:
    image, mask = ref.images[k], ref.masks[k]
    alpha = np.full(image.shape[:2], 255, np.uint8) if mask is None else mask
    return np.dstack([image, alpha])


def _jitter_colour(rgba: np.ndarray, rng: np.random.Generator, cfg: ComposeConfig) -> np.ndarray:
    rgb = rgba[..., :3].astype(np.float32)
    grey = rgb.mean(axis=2, keepdims=True)
    rgb = grey + (rgb - grey) * (1.0 + rng.uniform(-cfg.saturation, cfg.saturation))
    mean = float(rgb.mean())
    rgb = mean + (rgb - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast))
    rgb = rgb * (1.0 + rng.uniform(-cfg.channel_gain, cfg.channel_gain, 3)).astype(np.float32)
    rgb = rgb + 255.0 * rng.uniform(-cfg.brightness, cfg.brightness)
    out = rgba.copy()
    out[..., :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


def _perspective(rgba: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Warp by moving each corner up to ``amount`` of the logo's sides; crop to the result.
    Colour is warped with replicated borders and alpha with zeros, so no dark fringe appears."""
    h, w = rgba.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src + rng.uniform(-amount, amount, (4, 2)).astype(np.float32) * np.array(
        [w, h], np.float32
    )
    dst -= dst.min(axis=0)
    out_w, out_h = (int(math.ceil(v)) for v in dst.max(axis=0))
    m = cv2.getPerspectiveTransform(src, dst)
    rgb = cv2.warpPerspective(
        rgba[..., :3], m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpPerspective(
        rgba[..., 3], m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0
    )
    ys, xs = np.nonzero(alpha > 0)
    if len(xs) == 0:
        return rgba
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.ascontiguousarray(np.dstack([rgb, alpha])[y0:y1, x0:x1])


def _word_mark(rng: np.random.Generator) -> np.ndarray:
    """A random word in a random font and colour, sometimes on a coloured plate (RGBA)."""
    n = int(rng.integers(3, 10))
    text = "".join(rng.choice(list(TEXT_ALPHABET), n))
    font = int(rng.choice(HERSHEY_FONTS))
    scale = 2.0
    thick = int(rng.integers(2, 7))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = thick + 4
    w, h = tw + 2 * pad, th + base + 2 * pad
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    plate = rng.random() < 0.4
    rgb = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    if plate:
        rgb[:] = rng.integers(0, 256, 3).astype(np.uint8)
        alpha[:] = 255
    cv2.putText(rgb, text, (pad, pad + th), font, scale, colour, thick, cv2.LINE_AA)
    cv2.putText(alpha, text, (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
    return np.dstack([rgb, alpha])


def _scramble(rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brand's reference cut into tiles, shuffled, and hue-rotated by 60..300 degrees: the
    same strokes, texture and size as the logo, but not the logo (a look-alike negative)."""
    h, w = rgba.shape[:2]
    rows, cols = int(rng.integers(2, 4)), int(rng.integers(2, 5))
    th, tw = max(1, h // rows), max(1, w // cols)
    tiles = [
        rgba[r * th : (r + 1) * th, c * tw : (c + 1) * tw] for r in range(rows) for c in range(cols)
    ]
    order = rng.permutation(len(tiles))
    grid = [np.hstack([tiles[order[r * cols + c]] for c in range(cols)]) for r in range(rows)]
    out = np.ascontiguousarray(np.vstack(grid))
    hsv = cv2.cvtColor(np.ascontiguousarray(out[..., :3]), cv2.COLOR_RGB2HSV)
    shift = int(rng.integers(30, 150))  # OpenCV hue is 0..179: 60..300 degrees
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
    out[..., :3] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return out


def _crop_background(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    w, h = FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
    bh, bw = bg.shape[:2]
    aspect = w / h
    # Largest crop of the frame's aspect, then a random 60..100% of it.
    cw, ch = (bw, bw / aspect) if bw / bh <= aspect else (bh * aspect, bh)
    f = rng.uniform(0.6, 1.0)
    cw, ch = max(8, int(cw * f)), max(8, int(ch * f))
    x0 = int(rng.integers(0, bw - cw + 1))
    y0 = int(rng.integers(0, bh - ch + 1))
    crop = bg[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if cw > w else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp)


def _overlaps(box: Box, others: Sequence[Placed]) -> bool:
    """True when ``box`` touches another item's box (a 1% frame margin around each)."""
    m = 0.01
    return any(
        box[0] < o.box[2] + m
        and o.box[0] < box[2] + m
        and box[1] < o.box[3] + m
        and o.box[1] < box[3] + m
        for o in others
    )


def _paste(
    image: np.ndarray,
    rgba: np.ndarray,
    rng: np.random.Generator,
    cfg: ComposeConfig,
    placed: Sequence[Placed],
) -> tuple[np.ndarray, Box] | None:
    """Paste one (already jittered) RGBA item at a random free place; None if none is free."""
    fh, fw = image.shape[:2]
    warped = _perspective(rgba, rng, rng.uniform(0.0, cfg.max_perspective))
    lh, lw = warped.shape[:2]
    limit = cfg.max_rotation_deg
    rot = float(np.clip(rng.normal(0.0, limit / 2.0), -limit, limit))
    for _ in range(PLACEMENT_TRIES):
        scale = math.exp(rng.uniform(math.log(cfg.min_scale), math.log(cfg.max_scale)))
        # Keep the shorter side above MIN_LOGO_SIDE_PX (a wide word mark at 3% is a line).
        min_scale = MIN_LOGO_SIDE_PX * max(1.0, lw / lh) / fw
        scale = min(max(scale, min_scale), 1.0)
        half_w = 0.5 * scale
        half_h = 0.5 * scale * fw * lh / lw / fh
        cx = rng.uniform(min(0.5, half_w * 0.6), max(0.5, 1.0 - half_w * 0.6))
        cy = rng.uniform(min(0.5, half_h * 0.6), max(0.5, 1.0 - half_h * 0.6))
        try:
            out, box = paste_logo(image, warped, center=(cx, cy), scale=scale, rotation_deg=rot)
        except ValueError:
            continue  # landed outside the frame
        bw_px, bh_px = (box[2] - box[0]) * fw, (box[3] - box[1]) * fh
        if min(bw_px, bh_px) < MIN_LOGO_SIDE_PX or _overlaps(box, placed):
            continue
        return out, box
    return None


def _occlude(
    image: np.ndarray,
    background: np.ndarray,
    box: Box,
    rng: np.random.Generator,
    cfg: ComposeConfig,
) -> np.ndarray:
    """Cover part of a logo with a block inside its box (a background patch or a solid
    colour), never a whole side: at most ``max_occlusion`` of its width and height."""
    fh, fw = image.shape[:2]
    x0, y0 = int(math.ceil(box[0] * fw)), int(math.ceil(box[1] * fh))
    x1, y1 = int(box[2] * fw), int(box[3] * fh)
    bw, bh = x1 - x0, y1 - y0
    ow = int(bw * rng.uniform(0.15, cfg.max_occlusion))
    oh = int(bh * rng.uniform(0.15, cfg.max_occlusion))
    if ow < 2 or oh < 2:
        return image
    ox = x0 + int(rng.integers(0, bw - ow + 1))
    oy = y0 + int(rng.integers(0, bh - oh + 1))
    out = image.copy()
    if rng.random() < 0.5:
        sx = int(rng.integers(0, fw - ow + 1))
        sy = int(rng.integers(0, fh - oh + 1))
        out[oy : oy + oh, ox : ox + ow] = background[sy : sy + oh, sx : sx + ow]
    else:
        out[oy : oy + oh, ox : ox + ow] = rng.integers(0, 256, 3).astype(np.uint8)
    return out


def lay_out(
    rng: np.random.Generator,
    brands: Sequence[BrandRefs],
    backgrounds: Sequence[Background],
    cfg: ComposeConfig = ComposeConfig(),
) -> Layout:
    """Steps 1-3 of the module docstring: a background crop with logos and negatives pasted.

    Draws every random choice of the frame, including those :func:`finish` applies (the
    per-logo blur), so finishing is a pure function of the layout and the same generator.
    """
    if not brands or not backgrounds:
        raise ValueError("lay_out needs at least one brand and one background")
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    background = _crop_background(bg.image, rng)
    image = background
    logos: list[Placed] = []
    negatives: list[Placed] = []
    n_logos = 0 if rng.random() < cfg.p_no_logo else int(rng.integers(1, cfg.max_logos + 1))
    n_neg = int(rng.integers(0, cfg.max_distractors + 1))
    for _ in range(n_logos):
        cls = int(rng.integers(len(brands)))
        ref = brands[cls]
        rgba = _jitter_colour(_rgba(ref, int(rng.integers(len(ref.images)))), rng, cfg)
        got = _paste(image, rgba, rng, cfg, logos + negatives)
        if got is None:
            continue
        image, box = got
        if rng.random() < cfg.p_occlusion:
            image = _occlude(image, background, box, rng, cfg)
        sigma = rng.uniform(0.3, cfg.max_blur_sigma) if rng.random() < cfg.p_blur else 0.0
        logos.append(Placed(cls, box, float(sigma)))
    for _ in range(n_neg):
        if rng.random() < cfg.p_scramble:
            ref = brands[int(rng.integers(len(brands)))]
            item = _scramble(_rgba(ref, int(rng.integers(len(ref.images)))), rng)
            kind = "scramble"
        else:
            item, kind = _word_mark(rng), "text"
        got = _paste(image, _jitter_colour(item, rng, cfg), rng, cfg, logos + negatives)
        if got is None:
            continue
        image, box = got
        negatives.append(Placed(-1, box, 0.0, kind))
    return Layout(background, image, tuple(logos), tuple(negatives))


def finish(
    layout: Layout, rng: np.random.Generator, cfg: ComposeConfig = ComposeConfig()
) -> np.ndarray:
    """Step 4: blur the logos that drew a blur, then sensor noise and JPEG re-encoding."""
    image = layout.image.copy()
    fh, fw = image.shape[:2]
    for p in layout.logos:
        if p.blur_sigma <= 0.0:
            continue
        pad = int(math.ceil(3 * p.blur_sigma))
        x0 = max(0, int(p.box[0] * fw) - pad)
        y0 = max(0, int(p.box[1] * fh) - pad)
        x1 = min(fw, int(math.ceil(p.box[2] * fw)) + pad)
        y1 = min(fh, int(math.ceil(p.box[3] * fh)) + pad)
        region = np.ascontiguousarray(image[y0:y1, x0:x1])
        image[y0:y1, x0:x1] = cv2.GaussianBlur(region, (0, 0), p.blur_sigma)
    if rng.random() < cfg.p_noise:
        sigma = rng.uniform(1.0, cfg.max_noise_sigma)
        noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            image = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return image


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of frame ``index`` of the data set seeded ``seed`` (independent of N)."""
    return np.random.default_rng([int(seed), int(index)])


def compose_sample(
    seed: int,
    index: int,
    brands: Sequence[BrandRefs],
    backgrounds: Sequence[Background],
    cfg: ComposeConfig = ComposeConfig(),
) -> Sample:
    """Frame ``index`` of the data set seeded ``seed``: :func:`lay_out` then :func:`finish`."""
    rng = frame_rng(seed, index)
    layout = lay_out(rng, brands, backgrounds, cfg)
    image = finish(layout, rng, cfg)
    return Sample(image, tuple((p.cls, p.box) for p in layout.logos))


def yolo_label_lines(labels: Sequence[tuple[int, Box]]) -> list[str]:
    """``(cls, xyxy box)`` -> YOLO txt lines ``cls cx cy w h`` (normalized, fixed decimals)."""
    d = LABEL_DECIMALS
    out = []
    for cls, (x0, y0, x1, y1) in labels:
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        out.append(f"{cls} {cx:.{d}f} {cy:.{d}f} {w:.{d}f} {h:.{d}f}")
    return out


def _write_yaml(path: Path, root: Path, names: Sequence[str]) -> None:
    import yaml

    data = {
        "path": str(root.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {i: n for i, n in enumerate(names)},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def write_yolo_dataset(
    brands: Sequence[BrandRefs],
    backgrounds: Sequence[Background],
    out: Path,
    *,
    n_images: int,
    seed: int = 0,
    val_fraction: float = 0.2,
    cfg: ComposeConfig = ComposeConfig(),
) -> YoloDataset:
    """Generate ``n_images`` frames into an ultralytics YOLO data set under ``out``.

    The last ``max(1, round(n_images * val_fraction))`` frames are the validation split
    (``n_images >= 2``: both splits need a frame). Class ``k`` is ``brands[k].brand``.
    Existing files of the same names are overwritten; ``out`` is created.
    """
    if n_images < 2:
        raise ValueError(f"n_images must be >= 2 (a train and a val frame), got {n_images}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    out = Path(out)
    n_val = min(n_images - 1, max(1, round(n_images * val_fraction)))
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    n_boxes = n_empty = 0
    for i in range(n_images):
        split = "val" if i >= n_images - n_val else "train"
        sample = compose_sample(seed, i, brands, backgrounds, cfg)
        ok, buf = cv2.imencode(
            ".jpg",
            cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, IMAGE_JPEG_QUALITY],
        )
        if not ok:  # pragma: no cover - cv2 encodes any uint8 image
            raise ValueError(f"frame {i}: JPEG encoding failed")
        (out / "images" / split / f"{i:06d}.jpg").write_bytes(buf.tobytes())
        lines = yolo_label_lines(sample.labels)
        (out / "labels" / split / f"{i:06d}.txt").write_text("".join(f"{ln}\n" for ln in lines))
        n_boxes += len(lines)
        n_empty += not lines
    names = tuple(b.brand for b in brands)
    data_yaml = out / "data.yaml"
    _write_yaml(data_yaml, out, names)
    return YoloDataset(
        root=out,
        data_yaml=data_yaml,
        names=names,
        n_train=n_images - n_val,
        n_val=n_val,
        n_boxes=n_boxes,
        n_negative_images=n_empty,
        backgrounds=tuple(b.name for b in backgrounds),
    )
