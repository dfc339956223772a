"""Compositing a logo onto a real photo, with the exact box where it landed.

Why: the logo matcher's tests, the demo video builder and the logo detector's training data all
need frames where a known logo sits at a known place. Pasting real reference logos onto real
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
