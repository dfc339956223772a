"""Compositing a logo or a line of text onto a real photo, with the exact box where it landed.

Why: the logo matcher's tests, the demo video builder and the logo detector's training data all
need frames where a known logo sits at a known place; OCR's tests and benchmark need known text
at a known place and size (``render_text``). Pasting real reference logos onto real
photos gives that ground truth for free; the returned box is the label.

Conventions: images are ``(H, W, 3)`` uint8 **RGB**; a logo may be ``(h, w, 3)`` RGB or
``(h, w, 4)`` RGBA. Positions and sizes are normalized to the *background* frame: ``center`` is
``(cx, cy)`` in 0..1 of width and height (origin top-left), ``scale`` is the logo's width as a
fraction of the frame's width. Boxes are normalized ``xyxy`` (see ``vision.types.Box``).

Edge policy: a logo that hangs over a frame edge is **clipped**, as a logo on a real screen
would be, and the returned box is the visible part only. A paste that leaves no visible pixel
at all is refused (``ValueError``): a label for an invisible logo would teach a detector noise.
Inputs are never mutated.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from vision.types import Box, check_box, check_rgb_image

MAX_PASTE_SCALE = 2.0
"""Largest logo width as a fraction of the frame's width (a logo twice the frame is a crop)."""

MIN_PASTED_SIDE_PX = 4
"""Smallest side, in pixels, a pasted logo may shrink to; below it nothing recognizable is left."""

MAX_ROTATION_DEG = 180.0
"""Rotations are given in -180..180 degrees (counter-clockwise positive, as on screen)."""

BOX_ALPHA_THRESHOLD = 0.5
"""Opacity (0..1) above which a pasted pixel counts towards the box: faint anti-aliased fringes
and drop shadows do not stretch the label beyond what a person would draw."""

MIN_TEXT_SIZE_PX, MAX_TEXT_SIZE_PX = 6, 512
"""Bounds of ``render_text``'s font size (em height) in pixels."""

DEFAULT_JPEG_QUALITY = 85
"""Quality of :func:`jpeg_reencode`: the mild loss of a typical web image or video frame."""


def _split_logo(logo: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the logo as (h, w, 3) float32 RGB and its opacity as (h, w) float32 0..1."""
    if not isinstance(logo, np.ndarray) or logo.ndim != 3 or logo.shape[2] not in (3, 4):
        shape = getattr(logo, "shape", type(logo).__name__)
        raise ValueError(f"logo must be an (h, w, 3) RGB or (h, w, 4) RGBA array, got {shape}")
    if logo.dtype != np.uint8:
        raise ValueError(f"logo must be uint8, got {logo.dtype}")
    if logo.shape[0] < 1 or logo.shape[1] < 1:
        raise ValueError(f"logo must be non-empty, got {logo.shape}")
    h, w = logo.shape[:2]
    if logo.shape[2] == 4:
        if alpha is not None:
            raise ValueError("logo is RGBA and alpha was given too: pass one source of opacity")
        return logo[..., :3].astype(np.float32), logo[..., 3].astype(np.float32) / 255.0
    if alpha is None:
        return logo.astype(np.float32), np.ones((h, w), np.float32)
    if not isinstance(alpha, np.ndarray) or alpha.shape != (h, w):
        shape = getattr(alpha, "shape", type(alpha).__name__)
        raise ValueError(f"alpha must be ({h}, {w}) like the logo, got {shape}")
    if alpha.dtype == np.uint8:
        a = alpha.astype(np.float32) / 255.0
    elif alpha.dtype == np.bool_:
        a = alpha.astype(np.float32)
    elif np.issubdtype(alpha.dtype, np.floating):
        a = alpha.astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
            raise ValueError("a float alpha must lie in 0..1")
    else:
        raise ValueError(f"alpha must be uint8 (0..255), bool or float (0..1), got {alpha.dtype}")
    return logo.astype(np.float32), a


def paste_logo(
    background: np.ndarray,
    logo: np.ndarray,
    *,
    center: tuple[float, float],
    scale: float,
    rotation_deg: float = 0.0,
    alpha: np.ndarray | None = None,
) -> tuple[np.ndarray, Box]:
    """Alpha-blend ``logo`` onto a copy of ``background`` and return ``(image, box)``.

    ``background``: (H, W, 3) uint8 RGB, not modified. ``logo``: (h, w, 3) RGB or (h, w, 4) RGBA
    uint8; an RGBA logo's alpha is its opacity, or pass ``alpha`` ((h, w) uint8 0..255, bool, or
    float 0..1) for an RGB logo. ``center``: where the logo's centre lands, normalized (cx, cy);
    it may lie outside 0..1 for a logo half out of the frame. ``scale``: the logo's width as a
    fraction of the frame's width, in (0, MAX_PASTE_SCALE]; the aspect ratio is kept.
    ``rotation_deg``: counter-clockwise rotation about the logo's centre, -180..180.

    Returns the new (H, W, 3) uint8 RGB image and the normalized xyxy box tightly around the
    pasted logo's visible pixels (opacity > BOX_ALPHA_THRESHOLD), clipped to the frame.
    Raises ``ValueError`` for malformed arguments or a logo that would be entirely invisible.
    """
    check_rgb_image(background, "background")
    rgb, a = _split_logo(logo, alpha)
    cx, cy = (float(v) for v in center)
    if not all(math.isfinite(v) for v in (cx, cy)):
        raise ValueError(f"center must be finite, got {center!r}")
    if not (math.isfinite(scale) and 0.0 < scale <= MAX_PASTE_SCALE):
        raise ValueError(f"scale must be in (0, {MAX_PASTE_SCALE}], got {scale!r}")
    if not (math.isfinite(rotation_deg) and abs(rotation_deg) <= MAX_ROTATION_DEG):
        raise ValueError(f"rotation_deg must be in -180..180, got {rotation_deg!r}")

    big_h, big_w = background.shape[:2]
    h, w = a.shape
    new_w = scale * big_w
    new_h = new_w * h / w
    if min(new_w, new_h) < MIN_PASTED_SIDE_PX:
        raise ValueError(
            f"logo would be {new_w:.1f}x{new_h:.1f} px, smaller than {MIN_PASTED_SIDE_PX} px "
            "a side; use a larger scale"
        )
    # Resize first with area averaging (no aliasing on big shrinks), then rotate and place with
    # one affine warp onto the frame's canvas.
    size = (max(1, round(new_w)), max(1, round(new_h)))
    shrink = size[0] < w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    # Premultiply so transparent pixels' (arbitrary) colour does not bleed into the edges.
    premul = np.dstack([rgb * a[..., None], a])
    small = cv2.resize(premul, size, interpolation=interp)
    sh, sw = small.shape[:2]
    m = cv2.getRotationMatrix2D(((sw - 1) / 2.0, (sh - 1) / 2.0), rotation_deg, 1.0)
    m[0, 2] += cx * big_w - (sw - 1) / 2.0 - 0.5
    m[1, 2] += cy * big_h - (sh - 1) / 2.0 - 0.5
    warped = cv2.warpAffine(
        small,
        m,
        (big_w, big_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0, 0.0, 0.0, 0.0),
    )
    wa = np.clip(warped[..., 3], 0.0, 1.0)
    visible = wa > BOX_ALPHA_THRESHOLD
    if not visible.any():
        raise ValueError(
            f"logo at center {center!r} with scale {scale} lands entirely outside the frame"
        )
    out = background.astype(np.float32) * (1.0 - wa[..., None]) + warped[..., :3]
    image = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    ys = np.flatnonzero(visible.any(axis=1))
    xs = np.flatnonzero(visible.any(axis=0))
    box = check_box((xs[0] / big_w, ys[0] / big_h, (xs[-1] + 1) / big_w, (ys[-1] + 1) / big_h))
    return image, box


def render_text(
    background: np.ndarray,
    text: str,
    *,
    origin: tuple[float, float],
    size_px: int,
    color: tuple[int, int, int] = (255, 255, 255),
    plate: tuple[int, int, int] | None = None,
    font: Path | None = None,
) -> tuple[np.ndarray, Box]:
    """Draw one line of ``text`` onto a copy of ``background``; return ``(image, box)``.

    ``origin``: the text's top-left corner, normalized (x, y) of the frame. ``size_px``: the
    font size (em height) in pixels (capital letters stand ~0.7 of it). ``color``: RGB.
    ``plate``: an RGB colour for a filled rectangle behind the text (a caption or banner),
    or None to draw straight onto the photo. ``font``: a TrueType file; None is Pillow's
    built-in scalable font.

    Returns the (H, W, 3) uint8 RGB image and the normalized xyxy box of the text's ink,
    clipped to the frame. Raises ValueError for empty text, a size outside
    ``MIN_TEXT_SIZE_PX..MAX_TEXT_SIZE_PX`` or text that lands entirely outside the frame.
    """
    from PIL import Image, ImageDraw, ImageFont

    check_rgb_image(background, "background")
    if not text.strip():
        raise ValueError("text must not be empty")
    if not (MIN_TEXT_SIZE_PX <= size_px <= MAX_TEXT_SIZE_PX):
        raise ValueError(
            f"size_px must be {MIN_TEXT_SIZE_PX}..{MAX_TEXT_SIZE_PX} pixels, got {size_px!r}"
        )
    if not all(math.isfinite(float(v)) for v in origin):
        raise ValueError(f"origin must be finite, got {origin!r}")
    face = (
        ImageFont.truetype(str(font), size_px)
        if font is not None
        else ImageFont.load_default(size_px)
    )
    h, w = background.shape[:2]
    xy = (origin[0] * w, origin[1] * h)
    pil = Image.fromarray(background)
    draw = ImageDraw.Draw(pil)
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=face, anchor="la")
    if plate is not None:
        pad = max(2, size_px // 4)
        draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), fill=plate)
    draw.text(xy, text, font=face, fill=color, anchor="la")
    bx0, by0 = max(0.0, x0 / w), max(0.0, y0 / h)
    bx1, by1 = min(1.0, x1 / w), min(1.0, y1 / h)
    if bx1 <= bx0 or by1 <= by0:
        raise ValueError(f"text at origin {origin!r} lands entirely outside the frame")
    return np.asarray(pil), check_box((bx0, by0, bx1, by1))


def jpeg_reencode(image: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> np.ndarray:
    """Round-trip an (H, W, 3) uint8 RGB image through JPEG at ``quality`` (1..100).

    Why: a composite is too clean; real frames carry compression blocks and ringing, and a
    matcher or detector that only ever saw lossless pastes is tested on the easy case.
    """
    check_rgb_image(image, "image")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality!r}")
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - cv2 encodes any valid uint8 image
        raise ValueError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover - cv2 decodes the JPEG it just encoded
        raise ValueError(f"JPEG decoding failed after encoding at quality {int(quality)}")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
