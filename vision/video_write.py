"""Write RGB frames to an MP4 that :mod:`vision.video_decode` reads back.

Used by tests, examples and logo-training data, so it favours "plays everywhere and decodes
exactly here" over size: H.264 (libx264, ``yuv420p``) when this PyAV build has it, MPEG-4
Part 2 otherwise; constant frame rate; frame ``i`` has presentation time ``i / fps`` exactly
(the stream's time base is ``1 / fps`` as a fraction).

``yuv420p`` halves the chroma resolution, so width and height must be even; an odd size is
refused rather than silently cropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from vision.errors import MediaError

__all__ = ["DEFAULT_CRF", "VIDEO_CODECS", "write_video"]

VIDEO_CODECS = ("libx264", "mpeg4")
"""Encoders tried in order; the first one this PyAV build has is used."""

DEFAULT_CRF = 18
"""libx264 constant rate factor: 18 is visually lossless, so decoded frames stay close to the
input (tests compare histograms and timings, not bytes)."""

MAX_FPS_DENOMINATOR = 1001
"""Frame rates are stored as fractions; 1001 covers the NTSC rates (30000/1001 ...)."""


def _pick_codec() -> str:
    for name in VIDEO_CODECS:
        if name in av.codecs_available:
            return name
    raise MediaError(f"this PyAV build has none of the encoders {VIDEO_CODECS}")


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    faststart: bool = False,
    crf: int = DEFAULT_CRF,
) -> Path:
    """Encode ``frames`` ((H, W, 3) uint8 RGB, all the same even size) as an MP4 at ``fps``.

    ``faststart`` moves the index (``moov`` atom) to the front of the file, as streaming
    servers want; without it the index is at the end, as encoders write it by default.
    Returns the path written. Raises ValueError for bad arguments (odd size, mixed sizes,
    wrong dtype, no frames) and MediaError when encoding fails.
    """
    if not (fps > 0 and np.isfinite(fps)):
        raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
    out = Path(path)
    rate = Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR)
    codec = _pick_codec()
    options = {"movflags": "+faststart"} if faststart else {}
    try:
        with av.open(str(out), mode="w", format="mp4", options=options) as container:
            stream: av.VideoStream | None = None
            shape: tuple[int, ...] | None = None
            for i, img in enumerate(frames):
                if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
                    got = getattr(img, "shape", type(img).__name__)
                    raise ValueError(f"frame {i} must be (H, W, 3) RGB, got {got}")
                if img.dtype != np.uint8:
                    raise ValueError(f"frame {i} must be uint8, got {img.dtype}")
                if stream is None:  # the first frame: its size sets up the stream
                    h, w = img.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(
                            f"frame size {w}x{h} must be even in both directions "
                            "(yuv420p); resize or crop the frames first"
                        )
                    shape = img.shape
                    # every name in VIDEO_CODECS is a video encoder, which the stubs cannot see
                    stream = cast(av.VideoStream, container.add_stream(codec, rate=rate))
                    stream.width, stream.height = w, h
                    stream.pix_fmt = "yuv420p"
                    stream.time_base = 1 / rate
                    if codec == "libx264":
                        stream.options = {"crf": str(crf), "preset": "veryfast"}
                    else:
                        stream.bit_rate = max(1_000_000, w * h * 8)
                elif img.shape != shape:
                    raise ValueError(f"frame {i} is {img.shape}, the first frame was {shape}")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = i
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
            if stream is None:
                raise ValueError("no frames to write")
            container.mux(stream.encode(None))
    except (ValueError, MediaError):
        out.unlink(missing_ok=True)
        raise
    except av.FFmpegError as exc:
        out.unlink(missing_ok=True)
        raise MediaError(f"{out}: cannot write video ({exc})") from exc
    return out
