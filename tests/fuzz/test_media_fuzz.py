"""Image and video decoding on mutated real files: the only failure a damaged or hostile file
may cause is a MediaError naming it (a 400 for the client, one error line in a scan); a
successful decode is a well-formed RGB image. Any other exception is a crash to fix."""

from __future__ import annotations

import contextlib
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import given, settings

from tests.conftest import read_rgb
from tests.fuzz.conftest import examples
from tests.fuzz.mutations import mutated
from vision.errors import MediaError
from vision.image_decode import decode_image, image_size
from vision.keyframes import cut_thumb_size
from vision.video_decode import iter_video_thumbs, probe_video


def _encoded(real_images, name: str, ext: str, side: int = 96) -> bytes:
    img = cv2.resize(read_rgb(real_images[name]), (side, side * 3 // 4))
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def seeds(real_images) -> dict[str, bytes]:
    """Small real images in each accepted format (small, so each case decodes fast)."""
    return {
        "jpeg": _encoded(real_images, "bus", ".jpg"),
        "png": _encoded(real_images, "coffee", ".png"),
        "webp": _encoded(real_images, "chelsea", ".webp"),
    }


def _check_decoded(img: np.ndarray) -> None:
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] >= 1 and img.shape[1] >= 1


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_mutated_images_decode_or_raise_media_error(seeds, fmt: str) -> None:
    @settings(max_examples=examples(150))
    @given(data=mutated(seeds[fmt]))
    def check(data: bytes) -> None:
        with contextlib.suppress(MediaError):
            image_size(data, "fuzz")
        try:
            img = decode_image(data, "fuzz.img", max_pixels=4_000_000)
        except MediaError as exc:
            assert "fuzz.img" in str(exc)
            return
        _check_decoded(img)

    check()


def _tiny_video(path: Path) -> bytes:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(12):
            img = np.full((48, 64, 3), 20 * i, np.uint8)
            img[10:30, 5 + i : 25 + i] = rng.integers(0, 255, 3, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def test_mutated_videos_decode_or_raise_media_error(tmp_path_factory) -> None:
    root = tmp_path_factory.mktemp("fuzz-video")
    seed = _tiny_video(root / "seed.mp4")
    case = root / "case.mp4"

    @settings(max_examples=examples(60))
    @given(data=mutated(seed))
    def check(data: bytes) -> None:
        case.write_bytes(data)
        try:
            probe_video(case)
            # the path load_frames takes: a thumbnail of every frame, full RGB on request (the
            # same decode loop and conversion iter_video_frames uses)
            for frame in iter_video_thumbs(case, cut_thumb_size):
                assert np.isfinite(frame.t) and frame.t >= 0
                _check_decoded(frame.thumb)
                _check_decoded(frame.rgb())
        except MediaError as exc:
            assert "case.mp4" in str(exc)

    check()
