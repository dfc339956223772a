"""Decode untrusted image bytes to (H, W, 3) uint8 RGB, with limits checked before any pixel.

Order of checks (cheapest first, each one before the thing it guards):

1. byte count (``max_bytes``) and emptiness;
2. format sniffed from the magic bytes against :data:`vision.limits.ALLOWED_IMAGE_FORMATS`
   (JPEG, PNG, WebP); GIF, BMP, TIFF and anything unknown are refused with their name;
3. width and height parsed from the format's own header by this module (no decoder library
   involved, so no pixel buffer and no library-wide state such as Pillow's global
   ``MAX_IMAGE_PIXELS``) and checked against ``max_pixels``;
4. completeness: a JPEG must hold an EOI marker after its first scan, a PNG its ``IEND`` chunk,
   a WebP all the bytes its RIFF header declares. A truncated upload is an error, never a
   half-grey picture (some OpenCV/libjpeg builds fill the missing part with grey silently);
5. the pixels, decoded by OpenCV (``cv2.imdecode``, libjpeg-turbo/libpng/libwebp, the fastest
   decoder here) with EXIF orientation handling switched off, then EXIF orientation applied by
   us from the header (JPEG APP1 / PNG eXIf / WebP EXIF, read by Pillow without decoding
   pixels), so every format is handled the same way. (A PNG whose eXIf chunk comes after its
   pixel data is shown unrotated: reading it would mean decoding twice.)

Colour: grayscale, palette and 16-bit images become 8-bit RGB. Transparency is composited over
white: a transparent pixel shows whatever the page behind it shows, and a pin image sits on a
light page; dropping alpha instead would show the (often black) colour stored under it.

Every failure raises :class:`~vision.errors.MediaError` whose message starts with the source
(a file path, or ``"<bytes>"``) and says what is wrong.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import cv2
import numpy as np

from vision.errors import MediaError
from vision.image_formats import sniff_image_format
from vision.limits import ALLOWED_IMAGE_FORMATS, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from vision.types import Frame

__all__ = [
    "decode_image",
    "image_frame",
    "image_size",
    "read_image_file",
    "sniff_image_format",
]

EXIF_ORIENTATION_TAG = 0x0112
"""EXIF tag holding the orientation (1..8) a camera recorded instead of rotating pixels."""


def _over_limit(value: int, limit: int, unit: str, exact_unit: str, decimals: int = 1) -> str:
    """``"30.0 MB, over the 21.0 MB limit"``, in millions of ``unit``; when rounding would
    print the same number twice (20971521 bytes against 20971520), exact counts instead:
    ``"20971521 bytes, over the 20971520-byte limit"``, so the message never contradicts
    itself."""
    shown, cap = f"{value / 1e6:.{decimals}f}", f"{limit / 1e6:.{decimals}f}"
    if shown != cap:
        return f"{shown} {unit}, over the {cap} {unit} limit"
    return f"{value} {exact_unit}, over the {limit}-{exact_unit.rstrip('s')} limit"


_JPEG_REDUCE_FLAGS = {
    1: cv2.IMREAD_UNCHANGED,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
"""``jpeg_reduce`` factor -> OpenCV flag that decodes a JPEG at that fraction of its size."""


def _jpeg_layout(data: bytes, source: str) -> tuple[int, int, int]:
    """Walk a JPEG's marker segments: ``(width, height, offset of the first scan's data)``.

    Segments before the first SOS carry their length, so an EXIF thumbnail (with its own SOF
    and EOI inside APP1) is skipped as a whole and cannot be mistaken for the main image.
    """
    n = len(data)
    pos = 2  # after SOI
    size: tuple[int, int] | None = None
    while pos < n:
        if data[pos] != 0xFF:
            raise MediaError(f"{source}: corrupt JPEG (bad marker at byte {pos})")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers, no length
            continue
        if marker == 0xD9:
            raise MediaError(f"{source}: corrupt JPEG (image ends before any pixel data)")
        if pos + 2 > n:
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise MediaError(f"{source}: corrupt JPEG (segment length {length} at byte {pos})")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if pos + 7 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows this header
            if size is None:
                raise MediaError(f"{source}: corrupt JPEG (scan data before any frame header)")
            return size[0], size[1], pos + length
        pos += length
    raise MediaError(f"{source}: truncated or corrupt JPEG (headers end before the image data)")


def _webp_size(data: bytes, source: str) -> tuple[int, int]:
    chunk = bytes(data[12:16])
    if chunk == b"VP8X" and len(data) >= 30:
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return w, h
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w = int.from_bytes(data[26:28], "little") & 0x3FFF
        h = int.from_bytes(data[28:30], "little") & 0x3FFF
        return w, h
    raise MediaError(f"{source}: truncated or corrupt WebP (no readable VP8/VP8L/VP8X header)")


def image_size(data: bytes, source: str = "<bytes>") -> tuple[str, int, int]:
    """``(format, width, height)`` read from the header alone; no pixel is decoded.

    Raises MediaError for a format outside ALLOWED_IMAGE_FORMATS or an unreadable header.
    """
    fmt = sniff_image_format(data)
    if fmt is None:
        raise MediaError(f"{source}: not an image (unknown format)")
    if fmt not in ALLOWED_IMAGE_FORMATS:
        allowed = "/".join(f.upper() for f in ALLOWED_IMAGE_FORMATS)
        raise MediaError(f"{source}: {fmt.upper()} images are not accepted (only {allowed})")
    if fmt == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise MediaError(f"{source}: truncated or corrupt PNG (no IHDR header)")
        w, h = struct.unpack(">II", data[16:24])
    elif fmt == "webp":
        w, h = _webp_size(data, source)
    else:
        w, h, _ = _jpeg_layout(data, source)
    if w < 1 or h < 1:
        raise MediaError(f"{source}: corrupt {fmt.upper()} (header says {w}x{h} pixels)")
    return fmt, int(w), int(h)


def _check_complete(fmt: str, data: bytes, source: str) -> None:
    """Refuse truncated data before decoding (see the module docstring, step 4)."""
    if fmt == "jpeg":
        _, _, scan = _jpeg_layout(data, source)
        # Inside entropy-coded data every 0xFF is stuffed (FF00) or a restart marker, so the
        # first FFD9 after the scan starts is the EOI; trailing bytes after it are allowed
        # (motion photos append a video there).
        if data.find(b"\xff\xd9", scan) < 0:
            raise MediaError(f"{source}: truncated or corrupt JPEG (no end-of-image marker)")
    elif fmt == "png":
        if data.rfind(b"IEND", max(0, len(data) - 64)) < 0:
            raise MediaError(f"{source}: truncated or corrupt PNG (no IEND chunk at the end)")
    elif fmt == "webp":
        (riff_size,) = struct.unpack("<I", data[4:8])
        if len(data) < riff_size + 8:
            raise MediaError(
                f"{source}: truncated or corrupt WebP ({len(data)} bytes, header says "
                f"{riff_size + 8})"
            )


def _exif_orientation(data: bytes) -> int:
    """EXIF orientation 1..8 from the header (1 when absent or unreadable: EXIF is advisory)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # lazy: parses headers, decodes no pixels
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
            value = int(exif.get(EXIF_ORIENTATION_TAG, 1))
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, struct.error):
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored in camera order into display order (EXIF orientation 1..8)."""
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    elif orientation == 5:
        img = img.transpose(1, 0, 2)
    elif orientation == 6:
        img = np.rot90(img, k=-1)
    elif orientation == 7:
        img = img[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        img = np.rot90(img, k=1)
    return np.ascontiguousarray(img)


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    """OpenCV's IMREAD_UNCHANGED result (gray, BGR, BGRA; 8 or 16 bit) -> (H, W, 3) uint8 RGB."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise MediaError(f"unsupported sample type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        alpha = img[:, :, 3:4]
        if alpha.min() == 255:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        # Over white: out = c * a + 255 * (1 - a), in integers with rounding.
        a = alpha.astype(np.uint16)
        bgr = (img[:, :, :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
        return cv2.cvtColor(bgr.astype(np.uint8), cv2.COLOR_BGR2RGB)
    raise MediaError(f"unsupported channel count {channels}")


def decode_image(
    data: bytes,
    source: str = "<bytes>",
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    jpeg_reduce: int = 1,
) -> np.ndarray:
    """Decode JPEG/PNG/WebP bytes to a (H, W, 3) uint8 RGB array in display orientation.

    ``source`` names the data in error messages (a path, a request id). ``max_bytes`` bounds
    the encoded size, ``max_pixels`` the decoded width x height; both are checked before any
    pixel buffer is allocated. ``jpeg_reduce`` (1, 2, 4 or 8) decodes a JPEG at that fraction
    of its size in the DCT (libjpeg scaling: 1/reduce^2 of the memory and much less time; the
    result is ceil(w/reduce) x ceil(h/reduce)); other formats ignore it. Raises MediaError for
    anything it will not or cannot decode.
    """
    if jpeg_reduce not in _JPEG_REDUCE_FLAGS:
        raise ValueError(
            f"jpeg_reduce must be one of {sorted(_JPEG_REDUCE_FLAGS)}, got {jpeg_reduce}"
        )
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MediaError(f"{source}: image data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise MediaError(f"{source}: empty (0 bytes)")
    if len(data) > max_bytes:
        raise MediaError(f"{source}: image is {_over_limit(len(data), max_bytes, 'MB', 'bytes')}")
    fmt, w, h = image_size(data, source)
    if w * h > max_pixels:
        raise MediaError(
            f"{source}: image is {w}x{h} = {_over_limit(w * h, max_pixels, 'MP', 'pixels', 0)}"
        )
    _check_complete(fmt, data, source)
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    if fmt == "jpeg" and jpeg_reduce > 1:
        flags = _JPEG_REDUCE_FLAGS[jpeg_reduce] | cv2.IMREAD_IGNORE_ORIENTATION
        w, h = -(-w // jpeg_reduce), -(-h // jpeg_reduce)
    try:
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise MediaError(f"{source}: corrupt {fmt.upper()} ({exc.msg.strip()})") from exc
    if raw is None:
        raise MediaError(f"{source}: truncated or corrupt {fmt.upper()} (decoder gave up)")
    if raw.shape[0] != h or raw.shape[1] != w:
        raise MediaError(
            f"{source}: corrupt {fmt.upper()} (header says {w}x{h}, "
            f"pixels are {raw.shape[1]}x{raw.shape[0]})"
        )
    try:
        rgb = _to_rgb8(raw)
    except MediaError as exc:
        raise MediaError(f"{source}: {fmt.upper()} with {exc}") from None
    return _apply_orientation(rgb, _exif_orientation(data))


def read_image_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Read and decode an image file: (H, W, 3) uint8 RGB. The file size is checked before
    the file is read, so an oversize file costs one ``stat``."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise MediaError(f"{p}: not a file")
        if size > max_bytes:
            raise MediaError(f"{p}: image is {_over_limit(size, max_bytes, 'MB', 'bytes')}")
        data = p.read_bytes()
    except FileNotFoundError:
        raise MediaError(f"{p}: no such file") from None
    except PermissionError:
        raise MediaError(f"{p}: permission denied") from None
    except IsADirectoryError:
        raise MediaError(f"{p}: not a file") from None
    except OSError as exc:
        raise MediaError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(p), max_bytes=max_bytes, max_pixels=max_pixels)


def image_frame(data_or_path: bytes | str | os.PathLike[str], media_id: str) -> Frame:
    """One still image as a Frame (``t=0``, ``index=0``, ``reason="image"``).

    ``data_or_path``: encoded bytes, or a path to an image file.
    """
    if isinstance(data_or_path, bytes | bytearray | memoryview):
        image = decode_image(bytes(data_or_path), media_id)
    else:
        image = read_image_file(data_or_path)
    return Frame(media_id=media_id, t=0.0, image=image, index=0, reason="image")
