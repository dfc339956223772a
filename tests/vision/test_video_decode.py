from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.vision.videos import (
    SCENE_CUTS_S,
    SCENE_DURATION_S,
    SCENE_FPS,
    SCENE_PHOTOS,
    scene_frames,
    scene_images,
    standard_scene_video,
)
from vision.errors import MediaError
from vision.keyframes import cut_thumb_size
from vision.video_decode import VideoInfo, iter_video_frames, iter_video_thumbs, probe_video
from vision.video_write import write_video


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]) -> Path:
    return standard_scene_video(tmp_path_factory, real_images)


@pytest.fixture(scope="module")
def faststart_video(tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]) -> Path:
    return standard_scene_video(tmp_path_factory, real_images, faststart=True)


def test_probe_reads_the_header(scene_video: Path) -> None:
    info = probe_video(scene_video)
    assert info == VideoInfo(
        path=scene_video,
        duration_s=SCENE_DURATION_S,
        fps=SCENE_FPS,
        width=640,
        height=360,
        frame_count=100,
        codec="h264",
    )


def test_frames_have_exact_times_and_the_written_pixels(
    scene_video: Path, real_images: dict[str, Path]
) -> None:
    decoded = list(iter_video_frames(scene_video))
    assert [t for t, _ in decoded] == [i / SCENE_FPS for i in range(100)]  # exact, not approx
    images = scene_images([real_images[k] for k in SCENE_PHOTOS])
    source = list(scene_frames(images, SCENE_CUTS_S, SCENE_DURATION_S, SCENE_FPS))
    for i in (0, 24, 25, 73, 99):
        _, rgb = decoded[i]
        assert rgb.shape == (360, 640, 3) and rgb.dtype == np.uint8
        err = np.abs(rgb.astype(np.int16) - source[i].astype(np.int16)).mean()
        assert err < 6.0, f"frame {i} differs from what was written by {err:.1f} levels"


def test_thumbs_are_the_same_frames_made_small(scene_video: Path) -> None:
    """Same times; ``rgb()`` pixel for pixel what iter_video_frames yields; the thumbnail the
    size asked for and close to a cv2 area resize of the full frame."""
    full = list(iter_video_frames(scene_video))
    thumbs = list(iter_video_thumbs(scene_video, lambda w, h: (w // 10, h // 10)))
    assert [f.t for f in thumbs] == [t for t, _ in full]
    for i in (0, 25, 99):
        f = thumbs[i]
        assert f.thumb.shape == (36, 64, 3) and f.thumb.dtype == np.uint8
        assert np.array_equal(f.rgb(), full[i][1])
        small = cv2.resize(full[i][1], (64, 36), interpolation=cv2.INTER_AREA)
        assert np.abs(f.thumb.astype(np.int16) - small.astype(np.int16)).mean() < 2.0


def test_ntsc_rate_timestamps_are_exact(tmp_path: Path, real_images: dict[str, Path]) -> None:
    (img,) = scene_images([real_images["chelsea"]], size=(64, 48))
    path = write_video(tmp_path / "ntsc.mp4", [img] * 12, fps=30000 / 1001)
    info = probe_video(path)
    assert info.fps == pytest.approx(29.97, abs=1e-3) and info.frame_count == 12
    times = [t for t, _ in iter_video_frames(path)]
    assert times == [float(Fraction(1001 * i, 30000)) for i in range(12)]


@pytest.mark.parametrize(
    "limit, message",
    [
        ({"max_bytes": 1000}, "GB, over the 0.00 GB limit"),
        ({"max_duration_s": 5.0}, "video is 10 s long, over the 5 s limit"),
        ({"max_frame_pixels": 640 * 360 - 1}, "video frames are 640x360 = 0.2 MP, over the"),
    ],
)
def test_limits_refuse_before_decoding(
    scene_video: Path, limit: dict[str, float], message: str
) -> None:
    with pytest.raises(MediaError, match=scene_video.name) as info:
        probe_video(scene_video, **limit)
    assert message in str(info.value)
    frames = iter_video_frames(scene_video, **limit)
    with pytest.raises(MediaError) as info:
        next(frames)
    assert message in str(info.value)


def _make_bad(kind: str, tmp_path: Path, scene_video: Path, faststart_video: Path) -> Path:
    path = tmp_path / f"{kind}.mp4"
    rng = np.random.default_rng(1)
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path.write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("this is not a video\n" * 100)
    elif kind == "half_moov_at_end":
        data = scene_video.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "audio_only":  # one second of silence, AAC in MP4: a container, no video
        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream("aac", rate=8000)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 8000), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    elif kind == "header_only":
        path.write_bytes(faststart_video.read_bytes()[:40])
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "missing.mp4: no such file"),
        ("directory", "directory.mp4: not a file"),
        ("zero_bytes", "zero_bytes.mp4: empty (0 bytes)"),
        ("random_bytes", "random_bytes.mp4: not a video, or a corrupt or truncated one"),
        ("text", "text.mp4: not a video, or a corrupt or truncated one"),
        ("half_moov_at_end", "half_moov_at_end.mp4: not a video, or a corrupt or truncated one"),
        ("audio_only", "audio_only.mp4: no video stream (only audio)"),
        ("header_only", "header_only.mp4: no streams found (a truncated file, or not a video)"),
    ],
)
def test_bad_videos_fail_at_open(
    tmp_path: Path, scene_video: Path, faststart_video: Path, kind: str, message: str
) -> None:
    path = _make_bad(kind, tmp_path, scene_video, faststart_video)
    with pytest.raises(MediaError) as info:
        probe_video(path)
    assert message in str(info.value)
    seen = []
    with pytest.raises(MediaError) as info:
        seen.extend(iter_video_frames(path))
    assert message in str(info.value) and seen == []
    with pytest.raises(MediaError) as info:
        seen.extend(iter_video_thumbs(path, cut_thumb_size))
    assert message in str(info.value) and seen == []


def test_truncated_faststart_mp4_yields_what_is_there_then_raises(
    tmp_path: Path, faststart_video: Path
) -> None:
    data = faststart_video.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    assert probe_video(path).duration_s == SCENE_DURATION_S  # the index promises 10 s
    seen: list[float] = []
    with pytest.raises(MediaError, match=r"half\.mp4: truncated: frames stop at \d\.\d s of a"):
        for t, _ in iter_video_frames(path):
            seen.append(t)
    assert 10 < len(seen) < 90
    assert seen == [i / SCENE_FPS for i in range(len(seen))]


def test_garbage_in_the_middle_raises_after_the_good_frames(
    tmp_path: Path, faststart_video: Path
) -> None:
    data = bytearray(faststart_video.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 20_000] = np.random.default_rng(2).integers(0, 256, 20_000, np.uint8).tobytes()
    path = tmp_path / "garbled.mp4"
    path.write_bytes(bytes(data))
    times: list[float] = []
    with pytest.raises(MediaError, match=r"garbled\.mp4: corrupt video data after \d\.\d+ s"):
        for t, rgb in iter_video_frames(path):
            assert rgb.shape == (360, 640, 3)
            times.append(t)
    assert times == [i / SCENE_FPS for i in range(len(times))] and len(times) > 10


def test_a_copy_with_another_name_is_the_same_video(tmp_path: Path, scene_video: Path) -> None:
    copy = tmp_path / "clip.bin"
    shutil.copyfile(scene_video, copy)
    assert probe_video(copy).frame_count == 100


# --- write_video ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, fps, message",
    [
        ([np.zeros((35, 64, 3), np.uint8)], 10.0, "frame size 64x35 must be even"),
        ([np.zeros((36, 64, 3), np.float32)], 10.0, "frame 0 must be uint8, got float32"),
        ([np.zeros((36, 64), np.uint8)], 10.0, "frame 0 must be (H, W, 3) RGB, got (36, 64)"),
        (
            [np.zeros((36, 64, 3), np.uint8), np.zeros((36, 62, 3), np.uint8)],
            10.0,
            "frame 1 is (36, 62, 3), the first frame was (36, 64, 3)",
        ),
        ([], 10.0, "no frames to write"),
        ([np.zeros((36, 64, 3), np.uint8)], 0.0, "fps must be a finite number > 0, got 0.0"),
        ([np.zeros((36, 64, 3), np.uint8)], float("nan"), "fps must be a finite number > 0"),
    ],
)
def test_write_video_refuses_bad_frames(
    tmp_path: Path, frames: list[np.ndarray], fps: float, message: str
) -> None:
    out = tmp_path / "bad.mp4"
    with pytest.raises(ValueError) as info:
        write_video(out, frames, fps)
    assert message in str(info.value)
    assert not out.exists()
