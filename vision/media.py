"""One entry point for a media file: an image gives one Frame, a video its keyframes.

What a file is comes from its first bytes, not its name: a ``.jpg`` that is really a PNG
decodes as a PNG, a video saved as ``.bin`` is still a video, and a text file named ``.mp4``
is refused before FFmpeg spends time on it (unless its extension says video, in which case
FFmpeg gets the last word and a container we do not sniff, such as raw H.264, still works).

Errors are MediaError naming the file; they are raised when :func:`load_frames` is called
(missing file, unknown format, a video over a limit) or, for problems only decoding can find
(corrupt or truncated data), while iterating.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from vision.errors import MediaError
from vision.image_decode import image_frame, sniff_image_format
from vision.keyframes import KeyframeConfig, cut_thumb_size
from vision.types import Frame
from vision.video_decode import iter_video_thumbs, probe_video

__all__ = ["SNIFF_BYTES", "VIDEO_EXTENSIONS", "is_video_file", "load_frames", "sniff_video_format"]

SNIFF_BYTES = 512
"""Bytes read from the start of a file to tell its format (MPEG-TS needs two 188-byte packets)."""

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".mts", ".mpg", ".mpeg",
     ".wmv", ".ogv", ".3gp", ".h264", ".264", ".hevc", ".265"}
)  # fmt: skip
"""Extensions that let FFmpeg try a file whose first bytes match no container sniffed here."""

_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


def sniff_video_format(head: bytes) -> str | None:
    """Container name from a file's first bytes (``"mp4"``, ``"matroska"``, ``"avi"``...), or
    None. Image formats that share a container (AVIF, HEIC in ISO-BMFF) are not videos."""
    if sniff_image_format(head) is not None:
        return None
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "mpeg"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    return None


def _read_head(path: Path) -> bytes:
    try:
        if not path.is_file():
            if path.exists():
                raise MediaError(f"{path}: not a file")
            raise MediaError(f"{path}: no such file")
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    except PermissionError:
        raise MediaError(f"{path}: permission denied") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise MediaError(f"{path}: empty (0 bytes)")
    return head


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """True when the file's first bytes are a video container sniffed here (or, failing that,
    its extension is a video one and it is not an image). False for images, unknown content,
    and files that do not exist or cannot be read: :func:`load_frames` reports those."""
    p = Path(path)
    try:
        head = _read_head(p)
    except MediaError:
        return False
    if sniff_video_format(head) is not None:
        return True
    return sniff_image_format(head) is None and p.suffix.lower() in VIDEO_EXTENSIONS


def load_frames(
    path: str | os.PathLike[str],
    media_id: str | None = None,
    *,
    config: KeyframeConfig | None = None,
) -> Iterator[Frame]:
    """Frames to analyze from a media file: one ``reason="image"`` Frame for an image
    (JPEG/PNG/WebP), or the keyframes of a video (see :mod:`vision.keyframes`).

    ``media_id`` defaults to the file name. ``config`` sets keyframe sampling (defaults from
    :mod:`vision.limits`). Frames are decoded lazily: a video streams, one frame at a time,
    and only its keyframes are converted to full-size RGB (the cut detector looks at a
    thumbnail of every frame, :func:`vision.video_decode.iter_video_thumbs`).
    """
    p = Path(path)
    mid = media_id if media_id is not None else p.name
    head = _read_head(p)
    if sniff_image_format(head) is not None:
        # GIF/BMP/TIFF... are sniffed as images and refused by the decoder with their name.
        return iter((image_frame(p, mid),))
    if sniff_video_format(head) is None and p.suffix.lower() not in VIDEO_EXTENSIONS:
        raise MediaError(f"{p}: not an image or a video (unknown format)")
    probe_video(p)  # header, index and limits checked now, before anything is decoded
    cfg = config if config is not None else KeyframeConfig()
    return cfg.sample_decoded(iter_video_thumbs(p, cut_thumb_size), mid)
