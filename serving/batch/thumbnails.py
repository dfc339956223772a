"""Small JPEG thumbnails of a media file at given times, for the HTML report.

The report shows what the models saw at each keyframe, so it needs the frame at that exact
time, not "a frame near it": a video is opened once, and for each requested time (ascending)
the decoder seeks to the key frame at or before it and decodes forward to the first frame at
or after ``t - half a frame`` (the scan's keyframe times are frame times rounded to 1 ms).
Reading from the start would cost the whole video for a dozen thumbnails of an hour-long one.

Media files are untrusted like any scan input: the decode limits of :mod:`vision.limits` are
checked from the header first (:func:`vision.video_decode.probe_video`,
:func:`vision.image_decode.read_image_file`), and the frames decoded per seek are bounded.
Failures are MediaError naming the file; the report shows the message instead of thumbnails.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vision.errors import MediaError
from vision.image_decode import read_image_file, sniff_image_format
from vision.media import SNIFF_BYTES
from vision.video_decode import probe_video

__all__ = [
    "MAX_FRAMES_DECODED_PER_SEEK",
    "THUMBNAIL_JPEG_QUALITY",
    "THUMBNAIL_WIDTH_PX",
    "Thumbnail",
    "media_duration_s",
    "thumbnails_at",
]

THUMBNAIL_WIDTH_PX = 320
"""Width of an embedded thumbnail, pixels (height keeps the aspect ratio)."""

THUMBNAIL_JPEG_QUALITY = 70
"""JPEG quality (0..100) of embedded thumbnails: ~10-20 KB each at 320 px wide."""

MAX_FRAMES_DECODED_PER_SEEK = 2_000
"""Frames decoded forward from a seek point before giving up on reaching the time (a stream
with no key frames for minutes); the last frame decoded is used."""


@dataclass(frozen=True)
class Thumbnail:
    """A frame as a small JPEG: ``t`` requested (s), ``frame_t`` of the frame shown (s),
    ``width``/``height`` of the JPEG in pixels, ``jpeg`` its bytes."""

    t: float
    frame_t: float
    width: int
    height: int
    jpeg: bytes

    @property
    def data_uri(self) -> str:
        """The JPEG as a ``data:`` URI, so the page needs no file beside it."""
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii")


def _encode(rgb: np.ndarray, t: float, frame_t: float, width: int) -> Thumbnail:
    h, w = rgb.shape[:2]
    tw = min(width, w)
    th = max(1, round(h * tw / w))
    small = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA) if tw != w else rgb
    ok, buf = cv2.imencode(
        ".jpg",
        cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY],
    )
    if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB array
        raise MediaError(f"thumbnail at {t:.3f} s: JPEG encoding failed")
    return Thumbnail(t=t, frame_t=frame_t, width=tw, height=th, jpeg=buf.tobytes())


def _video_thumbnails(path: Path, times: Sequence[float], width: int) -> list[Thumbnail]:
    info = probe_video(path)  # limits from the header before one frame is decoded
    half = 0.5 / info.fps if info.fps else 0.0005
    out: list[Thumbnail] = []
    try:
        with av.open(str(path), mode="r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if stream.time_base is None:
                raise MediaError(f"{path}: video stream has no time base: cannot seek")
            tb = Fraction(stream.time_base)
            start = stream.start_time or 0
            for t in sorted(times):
                container.seek(int(start + Fraction(t) / tb), stream=stream, backward=True)
                found: tuple[float, av.VideoFrame] | None = None
                for n, frame in enumerate(container.decode(stream)):
                    ft = float((frame.pts - start) * tb) if frame.pts is not None else t
                    if ft >= t - half or n + 1 >= MAX_FRAMES_DECODED_PER_SEEK:
                        found = (ft, frame)
                        break
                if found is None:
                    continue  # past the last frame: no thumbnail rather than a wrong one
                ft, frame = found
                out.append(_encode(frame.to_ndarray(format="rgb24"), t, ft, width))
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: cannot decode for thumbnails ({exc.strerror or exc})") from None
    return out


def _head(p: Path) -> bytes:
    try:
        with p.open("rb") as f:
            return f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise MediaError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise MediaError(f"{p}: not a file") from None
    except OSError as exc:
        raise MediaError(f"{p}: cannot read ({exc.strerror or exc})") from None


def media_duration_s(path: str | os.PathLike[str]) -> float | None:
    """Seconds a media file lasts: 0 for a still image, a video's header duration (None when
    the header does not say). Raises MediaError like :func:`thumbnails_at`."""
    p = Path(path)
    if sniff_image_format(_head(p)) is not None:
        return 0.0
    return probe_video(p).duration_s


def thumbnails_at(
    path: str | os.PathLike[str], times: Sequence[float], *, width: int = THUMBNAIL_WIDTH_PX
) -> list[Thumbnail]:
    """Thumbnails of ``path`` at ``times`` (seconds), in ascending time order.

    A still image gives one thumbnail per requested time (its only frame, ``frame_t`` 0). A
    time past the end of a video gives none. Raises MediaError (naming the file) for a file
    that is missing, not a supported image or video, over a decode limit, or corrupt.
    """
    p = Path(path)
    if sniff_image_format(_head(p)) is not None:
        still = _encode(read_image_file(p), 0.0, 0.0, width)
        return [replace(still, t=t) for t in sorted(times)]
    return _video_thumbnails(p, times, width)
