"""vision.brands: the one check of a reference logo (decode limits, alpha, features)."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vision.logo_matcher
from vision import brands
from vision.brands import MIN_MASK_PIXELS, check_reference, decode_reference
from vision.errors import MediaError
from vision.limits import MAX_IMAGE_PIXELS

LOGO = Path(__file__).resolve().parents[2] / "examples" / "rules" / "brands" / "acme" / "logo2.png"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_a_real_logo_decodes_with_its_alpha_mask() -> None:
    image, mask = decode_reference(LOGO.read_bytes(), "logo2.png")
    assert image.dtype == np.uint8 and image.shape[2] == 3
    assert mask is not None and mask.shape == image.shape[:2]
    assert int(np.count_nonzero(mask)) >= MIN_MASK_PIXELS


@pytest.mark.parametrize(
    "data, message",
    [
        (
            png_header_only(100_000, 100_000),
            f"x.png: 100000x100000 pixels by its header, over the {MAX_IMAGE_PIXELS}-pixel limit",
        ),
        (png(np.zeros((64, 64, 4), np.uint8)), "x.png: the image is transparent almost everywhere"),
        (b"GIF89a" + b"\0" * 40, "x.png: not a jpeg, png, webp file (by its first bytes)"),
        (b"", "x.png: not a jpeg, png, webp file"),
    ],
)
def test_refused_before_or_while_decoding(data: bytes, message: str) -> None:
    with pytest.raises(MediaError, match="^" + re.escape(message)):
        decode_reference(data, "x.png")


def test_the_header_is_checked_before_any_pixel_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = brands._opener

    def recording(head: bytes) -> type | None:
        plugin = real(head)
        assert plugin is not None

        class Recording(plugin):  # type: ignore[misc, valid-type]
            def __init__(self, *args: object, **kw: object) -> None:
                opened.append("decoder")
                super().__init__(*args, **kw)

        return Recording

    monkeypatch.setattr(brands, "_opener", recording)
    with pytest.raises(MediaError, match="pixels by its header"):
        decode_reference(png_header_only(20_000, 20_000), "bomb.png")
    assert opened == []  # refused from the header: no decoder ever saw the data
    decode_reference(LOGO.read_bytes(), "logo2.png")
    assert opened == ["decoder"]  # (the recording works)


def test_check_reference_runs_the_matchers_feature_check_once_per_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    real = vision.logo_matcher.reference_view

    def counting(brand: str, path: Path, image: np.ndarray, mask: np.ndarray | None) -> object:
        seen.append(brand)
        return real(brand, path, image, mask)

    monkeypatch.setattr(vision.logo_matcher, "reference_view", counting)
    monkeypatch.setattr(brands, "_checked", {})
    blank = png(np.full((200, 200, 3), 255, np.uint8))
    for _ in range(2):
        with pytest.raises(MediaError, match=r"^blank\.png: only 0 features found in brand 'acme'"):
            check_reference(blank, "blank.png", "acme")
        check_reference(LOGO.read_bytes(), "logo2.png", "acme")
    assert seen == ["acme", "acme"]  # the second round came from the remembered outcomes
