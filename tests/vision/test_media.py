from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import read_rgb
from tests.vision.videos import SCENE_CUTS_S, standard_scene_video
from vision.errors import MediaError
from vision.keyframes import KeyframeConfig
from vision.media import is_video_file, load_frames, sniff_video_format


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]) -> Path:
    return standard_scene_video(tmp_path_factory, real_images)


@pytest.fixture()
def files(tmp_path: Path, real_images: dict[str, Path], scene_video: Path) -> dict[str, Path]:
    """Media files whose names may lie about their content."""
    out = {
        "jpeg": real_images["bus"],
        "png": real_images["astronaut"],
        "video": scene_video,
        "png_named_jpg": tmp_path / "really-a-png.jpg",
        "video_named_bin": tmp_path / "clip.bin",
        "jpeg_named_mp4": tmp_path / "photo.mp4",
        "random_mp4": tmp_path / "random.mp4",
        "text_txt": tmp_path / "notes.txt",
        "empty_mp4": tmp_path / "empty.mp4",
        "gif": tmp_path / "cat.gif",
        "half_mp4": tmp_path / "half.mp4",
        "missing": tmp_path / "missing.jpg",
        "directory": tmp_path,
    }
    shutil.copyfile(real_images["coffee"], out["png_named_jpg"])
    shutil.copyfile(scene_video, out["video_named_bin"])
    shutil.copyfile(real_images["zidane"], out["jpeg_named_mp4"])
    out["random_mp4"].write_bytes(
        np.random.default_rng(0).integers(0, 256, 9000, np.uint8).tobytes()
    )
    out["text_txt"].write_text("hello\n")
    out["empty_mp4"].write_bytes(b"")
    with Image.open(real_images["chelsea"]) as im:
        im.save(out["gif"], "GIF")
    data = scene_video.read_bytes()
    out["half_mp4"].write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize(
    "name, expected",
    [
        ("jpeg", False),
        ("png", False),
        ("video", True),
        ("png_named_jpg", False),
        ("video_named_bin", True),  # content, not name
        ("jpeg_named_mp4", False),  # content, not name
        ("random_mp4", True),  # unknown content, video extension: FFmpeg gets to try (and fail)
        ("text_txt", False),
        ("gif", False),
        ("empty_mp4", False),
        ("missing", False),
        ("directory", False),
    ],
)
def test_is_video_file(files: dict[str, Path], name: str, expected: bool) -> None:
    assert is_video_file(files[name]) is expected


@pytest.mark.parametrize(
    "name, shape",
    [("jpeg", (1080, 810, 3)), ("png", (512, 512, 3)), ("png_named_jpg", (400, 600, 3))],
)
def test_an_image_is_one_frame(
    files: dict[str, Path], real_images: dict[str, Path], name: str, shape: tuple[int, ...]
) -> None:
    (frame,) = list(load_frames(files[name]))
    assert (frame.media_id, frame.t, frame.index, frame.reason) == (files[name].name, 0, 0, "image")
    assert frame.image.shape == shape


def test_a_jpeg_named_mp4_is_still_an_image(
    files: dict[str, Path], real_images: dict[str, Path]
) -> None:
    (frame,) = list(load_frames(files["jpeg_named_mp4"], "pin-42"))
    assert frame.media_id == "pin-42" and frame.reason == "image"
    diff = np.abs(frame.image.astype(np.int16) - read_rgb(real_images["zidane"]).astype(np.int16))
    assert diff.mean() < 1.0


@pytest.mark.parametrize("name", ["video", "video_named_bin"])
def test_a_video_gives_its_keyframes(files: dict[str, Path], name: str) -> None:
    frames = list(load_frames(files[name]))
    assert all(f.media_id == files[name].name for f in frames)
    assert [f.t for f in frames if f.reason == "cut"] == list(SCENE_CUTS_S)
    assert len(frames) == 20 + 1  # the 0.5 s grid over 10 s, plus the cut at 7.3 s (off-grid)
    assert [f.index for f in frames] == list(range(len(frames)))


def test_config_reaches_the_sampler(files: dict[str, Path]) -> None:
    cfg = KeyframeConfig(interval_s=2.0, cut_threshold=1.5)  # cuts off, a keyframe every 2 s
    frames = list(load_frames(files["video"], "v", config=cfg))
    assert [(f.t, f.reason) for f in frames] == [(t, "interval") for t in (0.0, 2.0, 4.0, 6.0, 8.0)]


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing", "missing.jpg: no such file"),
        ("directory", ": not a file"),
        ("empty_mp4", "empty.mp4: empty (0 bytes)"),
        ("text_txt", "notes.txt: not an image or a video (unknown format)"),
        ("random_mp4", "random.mp4: not a video, or a corrupt or truncated one"),
        ("half_mp4", "half.mp4: not a video, or a corrupt or truncated one"),
        ("gif", "cat.gif: GIF images are not accepted (only JPEG/PNG/WEBP)"),
    ],
)
def test_bad_media_fails_at_the_call(files: dict[str, Path], name: str, message: str) -> None:
    with pytest.raises(MediaError) as info:
        load_frames(files[name])  # raised before iteration starts
    assert message in str(info.value)


def test_video_cut_short_yields_keyframes_then_raises(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]
) -> None:
    data = standard_scene_video(tmp_path_factory, real_images, faststart=True).read_bytes()
    path = tmp_path / "upload.mp4"
    path.write_bytes(data[: len(data) // 2])
    frames = load_frames(path)  # the index at the front is intact: the call succeeds
    seen = []
    with pytest.raises(MediaError, match="upload.mp4: truncated: frames stop at"):
        seen.extend(frames)
    assert seen and seen[0].t == 0.0 and seen[-1].t < 6.0


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"\x00\x00\x00\x20ftypisom", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "mp4"),
        (b"\x1a\x45\xdf\xa3\x01\x00", "matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"\x00\x00\x00\x1cftypavif", None),  # an AVIF still image, not a video
        (b"\xff\xd8\xff\xe0", None),
        (b"hello", None),
    ],
)
def test_sniff_video_format(head: bytes, expected: str | None) -> None:
    assert sniff_video_format(head) == expected
