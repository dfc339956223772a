from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.conftest import read_rgb
from vision import image_decode
from vision.errors import MediaError
from vision.image_decode import (
    EXIF_ORIENTATION_TAG,
    decode_image,
    image_frame,
    image_size,
    read_image_file,
    sniff_image_format,
)


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG (valid CRCs) whose IHDR claims ``width`` x ``height`` RGB pixels but
    whose IDAT holds one row: a decompression bomb's header, a few dozen bytes long."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A real JPEG with its SOF0/SOF2 frame header rewritten to claim another size."""
    out = bytearray(data)
    pos = 2
    while True:
        assert out[pos] == 0xFF
        marker, length = out[pos + 1], struct.unpack(">H", out[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC2):
            out[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(out)
        pos += 2 + length


# --- success table: every real photo, against Pillow as the reference decoder --------------


@pytest.mark.parametrize(
    "name, shape",
    [
        ("bus", (1080, 810, 3)),
        ("zidane", (720, 1280, 3)),
        ("grace_hopper", (600, 512, 3)),
        ("astronaut", (512, 512, 3)),
        ("coffee", (400, 600, 3)),
        ("chelsea", (300, 451, 3)),
    ],
)
def test_real_photos_decode_like_pillow(
    real_images: dict[str, Path], name: str, shape: tuple[int, int, int]
) -> None:
    img = read_image_file(real_images[name])
    assert img.shape == shape and img.dtype == np.uint8 and img.flags.c_contiguous
    ref = read_rgb(real_images[name])
    diff = np.abs(img.astype(np.int16) - ref.astype(np.int16))
    if real_images[name].suffix == ".png":
        assert diff.max() == 0  # lossless: bit-exact
    else:
        assert diff.mean() < 1.0  # two libjpeg builds may round the IDCT differently


def test_transparent_png_is_composited_over_white(real_images: dict[str, Path]) -> None:
    path = real_images["logo2"]
    img = read_image_file(path)
    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"))
    assert img.shape == (*rgba.shape[:2], 3)
    clear = rgba[..., 3] == 0
    opaque = rgba[..., 3] == 255
    assert clear.any() and opaque.any()
    assert (img[clear] == 255).all()
    assert np.array_equal(img[opaque], rgba[opaque][:, :3])


@pytest.mark.parametrize(
    "mode, fmt, kw, exact",
    [
        ("L", "PNG", {}, True),
        ("P", "PNG", {}, True),
        ("I;16", "PNG", {}, True),
        ("RGB", "WEBP", {"lossless": True}, True),
        ("RGB", "WEBP", {"quality": 90}, False),
        ("RGB", "JPEG", {"quality": 95}, False),
        ("L", "JPEG", {"quality": 95}, False),
        ("CMYK", "JPEG", {"quality": 95}, False),
    ],
)
def test_modes_and_formats_become_rgb(
    real_images: dict[str, Path], mode: str, fmt: str, kw: dict[str, object], exact: bool
) -> None:
    with Image.open(real_images["chelsea"]) as im:
        src = im.convert("RGB")
    if mode == "I;16":  # 16-bit gray, full range: 8-bit value v becomes v * 257
        converted = Image.fromarray(np.asarray(src.convert("L")).astype(np.uint16) * 257)
    else:
        converted = src.convert(mode)
    data = _encode(converted, fmt, **kw)
    img = decode_image(data, "chelsea")
    assert img.shape == (300, 451, 3) and img.dtype == np.uint8
    ref = np.asarray(converted.convert("RGB")) if mode != "I;16" else np.asarray(src.convert("L"))
    if ref.ndim == 2:
        ref = np.repeat(ref[..., None], 3, axis=2)
    diff = np.abs(img.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() == 0 if exact else diff.mean() < 4.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(
    real_images: dict[str, Path], orientation: int
) -> None:
    with Image.open(real_images["chelsea"]) as im:
        src = im.convert("RGB")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    data = _encode(src, "PNG", exif=exif)  # lossless, so the comparison is exact
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(decode_image(data), expected)


def test_exif_orientation_of_a_jpeg(real_images: dict[str, Path]) -> None:
    with Image.open(real_images["bus"]) as im:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = 6  # camera held sideways: display rotated 90 deg clockwise
        data = _encode(im, "JPEG", exif=exif, quality=90)
    assert decode_image(data).shape == (810, 1080, 3)


def test_header_size_without_decoding(real_images: dict[str, Path]) -> None:
    assert image_size(real_images["bus"].read_bytes()) == ("jpeg", 810, 1080)
    assert image_size(real_images["coffee"].read_bytes()) == ("png", 600, 400)
    with Image.open(real_images["chelsea"]) as im:
        for kw in ({"lossless": True}, {"quality": 80}):
            assert image_size(_encode(im, "WEBP", **kw)) == ("webp", 451, 300)
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = 3
        assert image_size(_encode(im.convert("RGBA"), "WEBP", exif=exif)) == ("webp", 451, 300)


# --- bad input table ------------------------------------------------------------------------


def _bad_inputs(real: dict[str, Path]) -> dict[str, bytes]:
    jpeg = real["bus"].read_bytes()
    png = real["coffee"].read_bytes()
    with Image.open(real["chelsea"]) as im:
        webp = _encode(im, "WEBP", quality=80)
        gif = _encode(im, "GIF")
        bmp = _encode(im, "BMP")
        tiff = _encode(im, "TIFF")
    rng = np.random.default_rng(0)
    return {
        "empty": b"",
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"<html><body>not an image</body></html>",
        "jpeg_half": jpeg[: len(jpeg) // 2],
        "jpeg_no_eoi": jpeg[:-2],
        "jpeg_headers_only": jpeg[:600],
        "png_half": png[: len(png) // 2],
        "png_no_iend": png[:-12],
        "webp_half": webp[: len(webp) // 2],
        "gif": gif,
        "bmp": bmp,
        "tiff": tiff,
        "png_bomb": _png_claiming(100_000, 100_000),
        "jpeg_bomb": _jpeg_with_size(jpeg, 60_000, 60_000),
        "png_zero_size": _png_claiming(0, 10),
    }


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "<test>: empty (0 bytes)"),
        ("random", "<test>: not an image (unknown format)"),
        ("text", "<test>: not an image (unknown format)"),
        ("jpeg_half", "<test>: truncated or corrupt JPEG"),
        ("jpeg_no_eoi", "<test>: truncated or corrupt JPEG (no end-of-image marker)"),
        ("jpeg_headers_only", "<test>: truncated or corrupt JPEG"),
        ("png_half", "<test>: truncated or corrupt PNG"),
        ("png_no_iend", "<test>: truncated or corrupt PNG (no IEND chunk"),
        ("webp_half", "<test>: truncated or corrupt WebP"),
        ("gif", "<test>: GIF images are not accepted (only JPEG/PNG/WEBP)"),
        ("bmp", "<test>: BMP images are not accepted"),
        ("tiff", "<test>: TIFF images are not accepted"),
        ("png_bomb", "<test>: image is 100000x100000 = 10000 MP, over the 50 MP limit"),
        ("jpeg_bomb", "<test>: image is 60000x60000 = 3600 MP, over the 50 MP limit"),
        ("png_zero_size", "<test>: corrupt PNG (header says 0x10 pixels)"),
    ],
)
def test_bad_images_raise_media_error(
    real_images: dict[str, Path], case: str, message: str
) -> None:
    data = _bad_inputs(real_images)[case]
    with pytest.raises(MediaError) as info:
        decode_image(data, "<test>")
    assert message in str(info.value)


def test_bomb_is_refused_fast_without_allocating(
    monkeypatch: pytest.MonkeyPatch, real_images: dict[str, Path]
) -> None:
    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixels were decoded for an over-limit image")

    monkeypatch.setattr(image_decode.cv2, "imdecode", no_decode)
    data = _png_claiming(100_000, 100_000)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match="over the 50 MP limit"):
        decode_image(data)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.05
    assert peak < 1_000_000  # 100000 x 100000 x 3 would be 30 GB


@pytest.mark.parametrize(
    "max_bytes, max_pixels, expectation",
    [
        (None, None, does_not_raise()),
        (137_419, None, does_not_raise()),  # exactly the file size: allowed
        (
            137_418,
            None,
            pytest.raises(
                MediaError, match=r"bus: image is 137419 bytes, over the 137418-byte limit$"
            ),
        ),
        (None, 810 * 1080, does_not_raise()),
        (
            None,
            810 * 1080 - 1,
            pytest.raises(
                MediaError,
                match=r"bus: image is 810x1080 = 874800 pixels, over the 874799-pixel limit$",
            ),
        ),
    ],
)
def test_limits_are_inclusive(
    real_images: dict[str, Path], max_bytes: int | None, max_pixels: int | None, expectation
) -> None:
    data = real_images["bus"].read_bytes()
    assert len(data) == 137_419
    kw = {k: v for k, v in (("max_bytes", max_bytes), ("max_pixels", max_pixels)) if v}
    with expectation:
        assert decode_image(data, "bus", **kw).shape == (1080, 810, 3)


def test_non_bytes_is_refused() -> None:
    with pytest.raises(MediaError, match="x: image data must be bytes, got str"):
        decode_image("bus.jpg", "x")  # type: ignore[arg-type]


def test_jpeg_with_trailing_data_after_eoi_decodes(real_images: dict[str, Path]) -> None:
    # Motion photos append a video after the JPEG's EOI: the picture itself is complete.
    data = real_images["bus"].read_bytes() + b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    assert decode_image(data).shape == (1080, 810, 3)


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a", "gif"),
        (b"\x00\x00\x00\x1cftypavif", "avif"),
        (b"\x00\x00\x00\x18ftypmp42", None),
        (b"", None),
    ],
)
def test_sniff(data: bytes, expected: str | None) -> None:
    assert sniff_image_format(data) == expected


# --- files and frames -----------------------------------------------------------------------


def test_read_image_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="nope.jpg: no such file"):
        read_image_file(tmp_path / "nope.jpg")
    with pytest.raises(MediaError, match=": not a file"):
        read_image_file(tmp_path)
    big = tmp_path / "big.jpg"
    with big.open("wb") as f:  # sparse: 30 MB on paper, nothing written
        f.truncate(30_000_000)
    with pytest.raises(MediaError, match=r"big.jpg: image is 30\.0 MB, over the 21\.0 MB limit"):
        read_image_file(big)


def test_a_size_just_over_the_limit_is_not_reported_as_equal_to_it(tmp_path: Path) -> None:
    from vision.limits import MAX_IMAGE_BYTES

    big = tmp_path / "edge.jpg"
    with big.open("wb") as f:  # sparse: one byte over the limit, which rounds to the limit
        f.truncate(MAX_IMAGE_BYTES + 1)
    expected = (
        f"edge.jpg: image is {MAX_IMAGE_BYTES + 1} bytes, over the {MAX_IMAGE_BYTES}-byte limit"
    )
    with pytest.raises(MediaError, match=f"{expected}$"):
        read_image_file(big)
    with pytest.raises(MediaError, match=f"<edge>: image is {MAX_IMAGE_BYTES + 1} bytes, over"):
        decode_image(b"\0" * (MAX_IMAGE_BYTES + 1), "<edge>")


def test_image_frame_from_path_and_bytes(real_images: dict[str, Path]) -> None:
    path = real_images["zidane"]
    a = image_frame(path, "zidane.jpg")
    b = image_frame(path.read_bytes(), "upload-1")
    assert (a.media_id, a.t, a.index, a.reason) == ("zidane.jpg", 0.0, 0, "image")
    assert b.media_id == "upload-1" and np.array_equal(a.image, b.image)
    with pytest.raises(MediaError, match="upload-2: empty"):
        image_frame(b"", "upload-2")
