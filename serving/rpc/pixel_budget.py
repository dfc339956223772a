"""Memory bounded in bytes: a budget of decoded pixels in flight, and frames shrunk to what the
models read before they wait for the model.

Why: a frame count bounds nothing. A 7000x7000 PNG is 143 KB on the wire and 147 MB decoded
(twice that while OpenCV's BGR array is turned into RGB), so 40 of them in flight held ~10 GB
although the model queue had room. So every image is priced from its header *before* decoding
(``decode_cost_bytes``), the price is reserved from one ``PixelBudget`` and refused at once
(``Overloaded`` -> RESOURCE_EXHAUSTED) when it does not fit, and released when the request ends.
What waits for the model is never full size: a big JPEG is decoded at 1/2, 1/4 or 1/8 of its
size in the DCT (``cv2.IMREAD_REDUCED_COLOR_*``: less memory and less time), then every frame is
resized so its longer side is at most ``MODEL_MAX_SIDE_PX``. After a big decode the freed heap
is handed back to the OS (``malloc_trim`` on glibc), so RSS falls again after a burst.

The budget is touched only from the event loop (reserve before the decode thread starts, release
after its result), but a lock keeps it correct from any thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from vision.errors import MediaError, Overloaded
from vision.image_decode import decode_image, image_size
from vision.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)

MODEL_MAX_SIDE_PX = 1280
"""Longest side of a frame handed to the models, pixels. No model reads more: the reference-logo
matcher works at 960 (``vision.logo_matcher.WORK_MAX_SIDE``), the detector at 480, CLIP at 224;
the rest is headroom for small on-screen text. Boxes are normalized, so they do not change."""
DECODE_BYTES_PER_PIXEL = 8
"""Peak bytes per header pixel while one image decodes: the decoder's BGR(A) array (3-4 B) plus
its RGB conversion (3 B), rounded up for alpha compositing's temporaries."""
DEFAULT_DECODE_BUDGET_BYTES = 1024 * 1024 * 1024
"""Decoded bytes in flight at most by default (1 GiB): two of the largest images at once."""
MIN_DECODE_BUDGET_BYTES = MAX_IMAGE_PIXELS * DECODE_BYTES_PER_PIXEL
"""The budget must hold the largest image accepted, or that image could never be served."""
MAX_DECODE_BUDGET_BYTES = 1024 * 1024 * 1024 * 1024
"""Largest budget accepted (1 TiB; every limit is finite)."""
TRIM_AFTER_BYTES = 64 * 1024 * 1024
"""A decode that held at least this many bytes hands freed heap back to the OS afterwards."""


class PixelBudget:
    """Decoded bytes in flight, at most ``capacity_bytes``; ``reserve`` refuses at once."""

    def __init__(self, capacity_bytes: int = DEFAULT_DECODE_BUDGET_BYTES) -> None:
        if not (MIN_DECODE_BUDGET_BYTES <= capacity_bytes <= MAX_DECODE_BUDGET_BYTES):
            raise ValueError(
                f"the decode budget must be in {MIN_DECODE_BUDGET_BYTES // 2**20}.."
                f"{MAX_DECODE_BUDGET_BYTES // 2**20} MiB, got {capacity_bytes / 2**20:g} MiB"
            )
        self.capacity_bytes = capacity_bytes
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` for the ``with`` block; ``Overloaded`` at once if they do not fit."""
        with self._lock:
            if self._used + nbytes > self.capacity_bytes:
                used = self._used
                raise Overloaded(
                    f"server busy: images being decoded hold {used / 2**20:.0f} MiB of the "
                    f"{self.capacity_bytes / 2**20:.0f} MiB decode budget and this one needs "
                    f"{nbytes / 2**20:.0f} MiB; back off and retry (smaller images cost less)"
                )
            self._used += nbytes
        try:
            yield
        finally:
            with self._lock:
                self._used -= nbytes


def jpeg_reduce_for(width: int, height: int, max_side: int = MODEL_MAX_SIDE_PX) -> int:
    """The largest DCT reduction (1, 2, 4, 8) that keeps the longer side >= ``max_side``."""
    side = max(width, height)
    for factor in (8, 4, 2):
        if side // factor >= max_side:
            return factor
    return 1


def decode_cost_bytes(data: bytes, source: str) -> int:
    """Peak decoded bytes of ``data``, from its header alone (0 when the header is unreadable
    or over the limits: the decoder then refuses it before allocating any pixel)."""
    if not data or len(data) > MAX_IMAGE_BYTES:
        return 0
    try:
        fmt, w, h = image_size(data, source)
    except MediaError:
        return 0
    if w * h > MAX_IMAGE_PIXELS:
        return 0
    if fmt == "jpeg":
        r = jpeg_reduce_for(w, h)
        w, h = -(-w // r), -(-h // r)
    return w * h * DECODE_BYTES_PER_PIXEL


def shrink_for_models(image: np.ndarray, max_side: int = MODEL_MAX_SIDE_PX) -> np.ndarray:
    """``image`` resized (area interpolation) so its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    side = max(h, w)
    if side <= max_side:
        return image
    scale = max_side / side
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def decode_for_models(data: bytes, source: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Image bytes -> ((H, W, 3) uint8 RGB no bigger than MODEL_MAX_SIDE_PX, (width, height) of
    the image as encoded, in display orientation). Runs on a CPU thread; MediaError if bad."""
    reduce, w, h = 1, 0, 0
    try:
        fmt, w, h = image_size(data, source)
        if fmt == "jpeg":
            reduce = jpeg_reduce_for(w, h)
    except MediaError:
        pass  # decode_image says what is wrong, with its checks in their order
    full = decode_image(data, source, jpeg_reduce=reduce)
    held = full.nbytes
    fh, fw = full.shape[:2]
    # the header's size, turned like the pixels when EXIF orientation transposed them
    size = (w, h) if (fw > fh) == (w > h) or fw == fh else (h, w)
    image = shrink_for_models(full)
    del full
    if held >= TRIM_AFTER_BYTES:
        release_freed_memory()
    return image, size


_libc: ctypes.CDLL | None | bool = False


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim(0)``; a no-op elsewhere).

    Big numpy buffers are mmapped and go back on free, but the decoders' medium-sized buffers
    live in per-thread malloc arenas that glibc keeps; without this RSS stays at a burst's peak.
    """
    global _libc
    if _libc is False:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
            _libc = lib if lib is not None and hasattr(lib, "malloc_trim") else None
        except OSError:
            _libc = None
    if _libc:
        _libc.malloc_trim(0)  # type: ignore[union-attr]
