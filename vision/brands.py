"""Brands directory -> reference logo images, one :class:`BrandRefs` per brand.

Layout (the advertisers' contract, see DESIGN.md)::

    brands/
      acme/            <- the brand's name is the folder's name: a lower-case slug
        logo.png       <- reference images: PNG, JPEG or WebP; a transparent PNG keeps its alpha
        logo-dark.jpg
      rival/
        rival.webp

Why the alpha matters: a transparent PNG's background is not part of the logo. Its alpha becomes
a mask so that the matcher computes features only on the logo itself; features on the
(arbitrary) transparent fill would never match a logo shown over a real scene.

Images are ``(H, W, 3)`` uint8 **RGB**; masks are ``(H, W)`` uint8, 255 on the logo, 0 off it,
or ``None`` when the image is opaque everywhere (the whole image is the logo).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.errors import MediaError
from vision.image_formats import IMAGE_SUFFIXES, UNSUPPORTED_IMAGE_SUFFIXES, sniff_image_format
from vision.limits import (
    ALLOWED_IMAGE_FORMATS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_REFS_PER_BRAND,
)

log = logging.getLogger(__name__)

BRAND_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
"""A brand's name: its folder's name, and what ``logo: {brand: ...}`` says in a campaign. The one
definition: the campaign schema and the rules checker use this constant (match it with
``fullmatch``)."""

MASK_ALPHA_THRESHOLD = 128
"""Alpha (0..255) at or above which a pixel belongs to the logo. Half-way keeps anti-aliased
edges that are mostly logo and drops faint shadows and glows."""

MIN_MASK_PIXELS = 64
"""A reference whose mask covers fewer pixels than this has no logo left to match."""


@dataclass(frozen=True, eq=False)
class BrandRefs:
    """One brand's reference logos.

    ``brand``: the folder name (lower-case slug), the name rules use. ``images``: (H, W, 3)
    uint8 RGB, one per file. ``masks``: per image, (H, W) uint8 (255 = logo) from the file's
    alpha, or None when the image is fully opaque. ``paths``: the files, in the same order
    (sorted by name, so the order is stable across machines).
    """

    brand: str
    images: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray | None, ...]
    paths: tuple[Path, ...]

    def __post_init__(self) -> None:
        if not BRAND_SLUG.fullmatch(self.brand):
            raise ValueError(f"brand must match {BRAND_SLUG.pattern}, got {self.brand!r}")
        if not self.images:
            raise ValueError(f"brand {self.brand!r} has no reference images")
        if not (len(self.images) == len(self.masks) == len(self.paths)):
            raise ValueError(
                f"brand {self.brand!r}: {len(self.images)} images, {len(self.masks)} masks and "
                f"{len(self.paths)} paths must be as many"
            )
        for img, mask, path in zip(self.images, self.masks, self.paths, strict=True):
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
                shape = getattr(img, "shape", type(img).__name__)
                raise ValueError(f"{path}: image must be (H, W, 3), got {shape}")
            if img.dtype != np.uint8:
                raise ValueError(f"{path}: image must be uint8, got {img.dtype}")
            if mask is not None and (mask.shape != img.shape[:2] or mask.dtype != np.uint8):
                raise ValueError(
                    f"{path}: mask must be {img.shape[:2]} uint8, got {mask.shape} {mask.dtype}"
                )


def read_reference(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and decode one reference logo file into (RGB image, mask or None).

    The file size is checked against ``MAX_IMAGE_BYTES`` before it is read; then
    :func:`decode_reference` checks everything else. Raises :class:`MediaError` naming ``path``.
    """
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise MediaError(
                f"{path}: {size} bytes, over the {MAX_IMAGE_BYTES}-byte limit for images"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise MediaError(f"{path}: cannot read reference logo ({exc.strerror})") from exc
    return decode_reference(data, str(path))


def decode_reference(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The one check of a reference logo's bytes: (RGB image, mask or None), or MediaError.

    Used by the brand loader (so the logo matcher) and by the rules checker, so that
    ``onscreen rules check`` refuses exactly the images ``scan``/``serve`` would refuse. In
    order, each before what it guards: size against ``MAX_IMAGE_BYTES``; the format by its
    first bytes against ``ALLOWED_IMAGE_FORMATS``; width x height read from the header by
    ``vision.image_decode.image_size`` (no pixel allocated) against ``MAX_IMAGE_PIXELS``, so a
    decompression bomb costs nothing; then the pixels, and a mask from the alpha channel that
    must leave at least ``MIN_MASK_PIXELS`` of logo. ``source`` starts every message.
    """
    from vision.image_decode import image_size

    if len(data) > MAX_IMAGE_BYTES:
        raise MediaError(
            f"{source}: {len(data)} bytes, over the {MAX_IMAGE_BYTES}-byte limit for images"
        )
    opener = _opener(data[:32])
    if opener is None:
        raise MediaError(
            f"{source}: not a {', '.join(ALLOWED_IMAGE_FORMATS)} file (by its first bytes); "
            "convert the logo to PNG"
        )
    try:
        _, w, h = image_size(data, source)
    except MediaError as exc:
        detail = str(exc).removeprefix(f"{source}: ")
        raise MediaError(f"{source}: cannot decode reference logo ({detail})") from None
    if w * h > MAX_IMAGE_PIXELS:
        raise MediaError(
            f"{source}: {w}x{h} pixels by its header, over the {MAX_IMAGE_PIXELS}-pixel limit "
            "for images; save the logo smaller (a few hundred pixels across is plenty)"
        )
    try:
        # The format's own plugin, not PIL.Image.open: the format is already known from the
        # magic bytes, and Image.open is monkey-patched by ultralytics to try installing HEIF
        # support on files it cannot identify.
        with opener(io.BytesIO(data)) as im:
            if im.size != (w, h):
                raise MediaError(
                    f"{source}: cannot decode reference logo (header says {w}x{h}, "
                    f"the decoder {im.size[0]}x{im.size[1]})"
                )
            has_alpha = "A" in im.getbands() or "transparency" in im.info
            rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    except MediaError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise MediaError(f"{source}: cannot decode reference logo ({exc})") from exc
    if not has_alpha:
        return np.ascontiguousarray(rgba), None
    rgb = np.ascontiguousarray(rgba[..., :3])
    alpha = rgba[..., 3]
    if alpha.min() >= MASK_ALPHA_THRESHOLD:
        return rgb, None  # opaque everywhere: an alpha channel that says nothing
    mask = np.where(alpha >= MASK_ALPHA_THRESHOLD, 255, 0).astype(np.uint8)
    if int(np.count_nonzero(mask)) < MIN_MASK_PIXELS:
        raise MediaError(
            f"{source}: the image is transparent almost everywhere (under {MIN_MASK_PIXELS} "
            "visible pixels); nothing of the logo is left to match"
        )
    return rgb, mask


def check_reference(data: bytes, source: str, brand: str) -> None:
    """Everything the logo matcher checks about one reference image, without keeping it.

    :func:`decode_reference`, then the matcher's own feature extraction
    (``vision.logo_matcher.reference_view``, which refuses a logo with too few features to
    match: a blank or tiny image). For the rules checker; raises :class:`MediaError`.

    The feature extraction takes most of a second per image on a CPU, and the rules are checked
    on every reload, so its outcome is remembered per image content (sha256) for the process:
    an unchanged logo is checked once, a changed one again (messages name the brand: the
    brand is part of the key).
    """
    from vision.logo_matcher import reference_view  # the matcher imports this module

    digest = hashlib.sha256(data).digest() + brand.encode()
    with _checked_lock:
        known = _checked.get(digest, _UNCHECKED)
    if known is _UNCHECKED:
        try:
            image, mask = decode_reference(data, source)
            reference_view(brand, Path(source), image, mask)
            known = None
        except MediaError as exc:
            known = str(exc).removeprefix(f"{source}: ")
        with _checked_lock:
            while len(_checked) >= MAX_CHECKED_REFERENCES:
                _checked.pop(next(iter(_checked)))
            _checked[digest] = known
    if known is not None:
        raise MediaError(f"{source}: {known}")


MAX_CHECKED_REFERENCES = 4096
"""Reference-image outcomes ``check_reference`` remembers (keys of ~40 bytes: a few hundred KB)."""
_UNCHECKED = object()
_checked: dict[bytes, object] = {}
_checked_lock = threading.Lock()


def load_brand(folder: Path) -> BrandRefs:
    """Read every reference image in one brand folder (name = brand). Raises MediaError."""
    folder = Path(folder)
    brand = folder.name
    if not BRAND_SLUG.fullmatch(brand):
        raise MediaError(
            f"{folder}: brand folder name {brand!r} is not a lower-case slug "
            f"({BRAND_SLUG.pattern}); rename it, e.g. to {_suggest_slug(brand)!r}"
        )
    files: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in UNSUPPORTED_IMAGE_SUFFIXES:
            raise MediaError(
                f"{path}: {suffix} reference logos are not supported; convert it to PNG "
                "(keeping transparency), JPEG or WebP"
            )
        if suffix in IMAGE_SUFFIXES:
            files.append(path)
        else:
            log.debug("%s: not a reference image, ignored", path)
    if not files:
        raise MediaError(
            f"{folder}: brand {brand!r} has no reference images "
            f"({', '.join(IMAGE_SUFFIXES)}); add at least one logo file"
        )
    if len(files) > MAX_REFS_PER_BRAND:
        raise MediaError(
            f"{folder}: {len(files)} reference images, over the limit of {MAX_REFS_PER_BRAND} "
            "per brand; keep the most distinct ones"
        )
    images, masks = zip(*(read_reference(p) for p in files), strict=True)
    return BrandRefs(brand=brand, images=tuple(images), masks=tuple(masks), paths=tuple(files))


def load_brands(brands_dir: Path) -> tuple[BrandRefs, ...]:
    """Read ``brands_dir/<brand>/*`` into one :class:`BrandRefs` per brand, sorted by brand.

    Raises :class:`MediaError` when the directory is missing or holds no brand folder, or when
    any brand folder is misnamed, empty or holds an unreadable image (one bad file fails the
    load: a brand silently missing a logo would silently miss placements).
    """
    root = Path(brands_dir)
    if not root.exists():
        raise MediaError(f"{root}: brands directory does not exist")
    if not root.is_dir():
        raise MediaError(f"{root}: brands path is not a directory (expected brands/<brand>/*.png)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise MediaError(
            f"{root}: no brand folders; expected {root}/<brand>/<logo>.png, one folder per brand"
        )
    return tuple(load_brand(f) for f in folders)


def _opener(head: bytes) -> type | None:
    """The PIL image class for a file's first bytes, for the allowed formats only."""
    from PIL import JpegImagePlugin, PngImagePlugin, WebPImagePlugin

    fmt = sniff_image_format(head)
    if fmt not in ALLOWED_IMAGE_FORMATS:
        return None
    plugins = {
        "png": PngImagePlugin.PngImageFile,
        "jpeg": JpegImagePlugin.JpegImageFile,
        "webp": WebPImagePlugin.WebPImageFile,
    }
    return plugins.get(fmt or "")


def _suggest_slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug or "brand"
