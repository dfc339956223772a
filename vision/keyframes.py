"""Keyframe sampling: a fixed time grid plus every shot cut.

Why both: the grid (every ``interval_s``) bounds how long anything on screen can go unseen; the
cuts catch a new shot the moment it starts, so a placement can begin at the cut instead of up
to one interval later.

Cut detection looks at *every* decoded frame but cheaply: each frame is shrunk to
``CUT_THUMB_WIDTH`` pixels wide (area averaging, which also removes most sensor noise), turned
into an HSV colour histogram (``CUT_HIST_BINS`` hue x saturation x value bins, L1-normalised),
and compared with the previous frame's by Bhattacharyya distance (0 same, 1 disjoint). A
distance above ``cut_threshold`` is a cut. Cuts closer than ``min_cut_gap_s`` to the previous
cut are one cut (flashes, dissolves), so the first frame of a burst is the keyframe.
Measured on real photos (640x360, tests/vision/videos.py): different photos are 0.68..0.9
apart; the same photo zoomed up to 10 % with noise sigma 6 stays below 0.19, so the default
threshold of 0.5 has a wide margin on both sides. Cost: about 1 ms per 1080p frame on one core.

Grid: a frame is an interval keyframe when it is the first frame at or after a multiple of
``interval_s`` (from t = 0, the stream start) not yet covered, so keyframes line up at 0, 0.5,
1.0 ... s whatever the frame rate. A frame that is both a cut and on the grid is yielded once,
as a cut.

Two ways in, the same keyframes out: :func:`sample_keyframes` takes full ``(t, rgb)`` frames
and shrinks each with cv2; :func:`sample_decoded_keyframes` takes frames that already carry a
thumbnail (:class:`ThumbnailedFrame`, as :func:`vision.video_decode.iter_video_thumbs` makes
them with swscale straight from the decoded picture) and asks for the full-size RGB only of
the frames it keeps, so a video is never converted to full-size RGB frame by frame. The two
thumbnails differ by about one 8-bit level, which moves histogram distances between
consecutive frames by at most 0.035 on the test videos (tests/vision/test_keyframes.py);
the cuts found are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from vision.limits import DEFAULT_CUT_THRESHOLD, DEFAULT_KEYFRAME_INTERVAL_S, MIN_CUT_GAP_S
from vision.types import Frame, KeyframeReason

__all__ = [
    "CUT_HIST_BINS",
    "CUT_THUMB_WIDTH",
    "KeyframeConfig",
    "ThumbnailedFrame",
    "cut_thumb_size",
    "frame_histogram",
    "histogram_distance",
    "sample_decoded_keyframes",
    "sample_keyframes",
    "thumb_histogram",
]

CUT_THUMB_WIDTH = 64
"""Width in pixels of the copy the cut detector looks at (height keeps the aspect ratio)."""

CUT_HIST_BINS = (16, 4, 4)
"""HSV histogram bins (hue, saturation, value): hue carries most of a scene's identity."""

_GRID_EPS = 1e-9
"""Float slack when placing a timestamp on the grid (0.3 / 0.1 is 2.9999999999999996)."""


class ThumbnailedFrame(Protocol):
    """A decoded frame as :func:`sample_decoded_keyframes` reads it: ``t`` seconds,
    ``thumb`` (h, w, 3) uint8 RGB of :func:`cut_thumb_size`, and ``rgb()`` the full
    (H, W, 3) uint8 RGB frame, asked for only when the frame is a keyframe
    (:class:`vision.video_decode.DecodedFrame` is one)."""

    @property
    def t(self) -> float: ...

    @property
    def thumb(self) -> np.ndarray: ...

    def rgb(self) -> np.ndarray: ...


@dataclass(frozen=True)
class KeyframeConfig:
    """How keyframes are chosen. ``interval_s``: grid step in seconds (> 0).
    ``cut_threshold``: Bhattacharyya distance 0..1 above which consecutive frames are a cut
    (> 1 switches cut detection off). ``min_cut_gap_s``: cuts closer than this are one cut."""

    interval_s: float = DEFAULT_KEYFRAME_INTERVAL_S
    cut_threshold: float = DEFAULT_CUT_THRESHOLD
    min_cut_gap_s: float = MIN_CUT_GAP_S

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ValueError(f"interval_s must be a finite number > 0 s, got {self.interval_s!r}")
        if not (math.isfinite(self.cut_threshold) and self.cut_threshold > 0):
            raise ValueError(f"cut_threshold must be > 0, got {self.cut_threshold!r}")
        if not (math.isfinite(self.min_cut_gap_s) and self.min_cut_gap_s >= 0):
            raise ValueError(f"min_cut_gap_s must be >= 0 s, got {self.min_cut_gap_s!r}")

    def sample(self, frames: Iterable[tuple[float, np.ndarray]], media_id: str) -> Iterator[Frame]:
        """:func:`sample_keyframes` with this configuration."""
        return _sample(_full_frames(frames), media_id, self)

    def sample_decoded(self, frames: Iterable[ThumbnailedFrame], media_id: str) -> Iterator[Frame]:
        """:func:`sample_decoded_keyframes` with this configuration."""
        return _sample(((f.t, thumb_histogram(f.thumb), f.rgb) for f in frames), media_id, self)


def cut_thumb_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` of the copy the cut detector looks at for a ``width`` x
    ``height`` frame: ``CUT_THUMB_WIDTH`` wide (never wider than the frame), same aspect."""
    tw = min(CUT_THUMB_WIDTH, width)
    return tw, max(1, round(height * tw / width))


def frame_histogram(image: np.ndarray) -> np.ndarray:
    """The cut detector's signature of one (H, W, 3) uint8 RGB frame: an L1-normalised HSV
    histogram, float32 of shape ``CUT_HIST_BINS``, of its :func:`cut_thumb_size` copy."""
    h, w = image.shape[:2]
    small = cv2.resize(image, cut_thumb_size(w, h), interpolation=cv2.INTER_AREA)
    return thumb_histogram(small)


def thumb_histogram(small: np.ndarray) -> np.ndarray:
    """:func:`frame_histogram` of a frame already shrunk to its :func:`cut_thumb_size`:
    (h, w, 3) uint8 RGB in, float32 ``CUT_HIST_BINS`` out."""
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(CUT_HIST_BINS), [0, 180, 0, 256, 0, 256])
    # cv2's stubs omit that ``dst`` may be None (allocate the output), as the binding allows.
    return cv2.normalize(hist, None, 1.0, 0.0, cv2.NORM_L1)  # type: ignore[call-overload]


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two :func:`frame_histogram` results: 0 same .. 1 disjoint."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def sample_keyframes(
    frames: Iterable[tuple[float, np.ndarray]],
    media_id: str,
    *,
    interval_s: float = DEFAULT_KEYFRAME_INTERVAL_S,
    cut_threshold: float = DEFAULT_CUT_THRESHOLD,
    min_cut_gap_s: float = MIN_CUT_GAP_S,
) -> Iterator[Frame]:
    """Yield the keyframes of a decoded frame stream, lazily and in order.

    ``frames``: ``(t, rgb)`` pairs, ``t`` seconds increasing, ``rgb`` (H, W, 3) uint8 (as
    :func:`vision.video_decode.iter_video_frames` yields). Every frame is looked at for cuts;
    only keyframes come out, as :class:`Frame` with ``reason`` ``"cut"`` or ``"interval"`` and
    ``index`` counting keyframes from 0. The first frame is always a keyframe. Only the
    previous frame's histogram is kept: memory does not grow with the video.
    """
    cfg = KeyframeConfig(interval_s, cut_threshold, min_cut_gap_s)  # bad knobs fail here, now
    return cfg.sample(frames, media_id)


def sample_decoded_keyframes(
    frames: Iterable[ThumbnailedFrame],
    media_id: str,
    *,
    interval_s: float = DEFAULT_KEYFRAME_INTERVAL_S,
    cut_threshold: float = DEFAULT_CUT_THRESHOLD,
    min_cut_gap_s: float = MIN_CUT_GAP_S,
) -> Iterator[Frame]:
    """:func:`sample_keyframes` for frames that carry their own cut thumbnail
    (:class:`ThumbnailedFrame`): cuts are judged on ``thumb``, and ``rgb()`` is called only
    for the keyframes, whose ``image`` it becomes. Same laziness and memory as
    :func:`sample_keyframes`."""
    cfg = KeyframeConfig(interval_s, cut_threshold, min_cut_gap_s)  # bad knobs fail here, now
    return cfg.sample_decoded(frames, media_id)


_Candidate = tuple[float, np.ndarray, Callable[[], np.ndarray]]
"""What the sampler needs of a frame: ``(t, cut histogram, full RGB on demand)``."""


def _full_frames(frames: Iterable[tuple[float, np.ndarray]]) -> Iterator[_Candidate]:
    for t, image in frames:
        yield t, frame_histogram(image), _Const(image)


@dataclass(frozen=True)
class _Const:
    """``rgb()`` of a frame decoded to full-size RGB already: the image as it is."""

    image: np.ndarray

    def __call__(self) -> np.ndarray:
        return self.image


def _sample(frames: Iterable[_Candidate], media_id: str, cfg: KeyframeConfig) -> Iterator[Frame]:
    prev_hist: np.ndarray | None = None
    last_cut_t = -math.inf
    next_slot = 0  # the grid slot (multiple of interval_s) not yet covered by a keyframe
    index = 0
    for t, hist, image in frames:
        is_cut = (
            prev_hist is not None
            and histogram_distance(prev_hist, hist) > cfg.cut_threshold
            and t - last_cut_t >= cfg.min_cut_gap_s
        )
        if is_cut:
            last_cut_t = t
        prev_hist = hist
        slot = math.floor(t / cfg.interval_s + _GRID_EPS)
        on_grid = slot >= next_slot
        if on_grid:
            next_slot = slot + 1
        if is_cut or on_grid:
            reason: KeyframeReason = "cut" if is_cut else "interval"
            yield Frame(media_id=media_id, t=t, image=image(), index=index, reason=reason)
            index += 1
