"""Image formats by their first bytes and file suffixes: pure knowledge, no decoder.

Kept apart from ``vision.image_decode`` (which loads OpenCV) so that the rules checker in
``targeting`` and the brand loader can recognise files with exactly the same rules as the
decoder without loading it.
"""

from __future__ import annotations

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""File suffixes read as images (matched case-insensitively): ``ALLOWED_IMAGE_FORMATS``."""

UNSUPPORTED_IMAGE_SUFFIXES = (".gif", ".bmp", ".tif", ".tiff", ".svg", ".heic", ".avif", ".ico")
"""Image files refused loudly rather than skipped: an advertiser who dropped ``logo.svg`` in a
brand folder expects it to be used, so silence would hide a missing reference."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Magic bytes of formats we recognise: the allowed ones and the refused ones (named in errors).
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (PNG_SIGNATURE, 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"\x00\x00\x00\x0cjP  ", 0, "jpeg2000"),
    (b"\x00\x00\x01\x00", 0, "ico"),
    (b"8BPS", 0, "psd"),
)


def sniff_image_format(data: bytes) -> str | None:
    """Name of the image format by its magic bytes (``"jpeg"``, ``"png"``, ``"webp"``,
    ``"gif"``, ...), or None when the bytes look like no image format known here.

    Only the first 32 bytes are looked at; nothing is decoded.
    """
    head = bytes(data[:32])
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1"):
        return "heic"
    for magic, offset, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None
