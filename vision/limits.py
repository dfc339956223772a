"""Decode and sampling limits: named, with units, and all finite.

Every limit is checked *before* the expensive thing it guards (pixels are allocated only after
the header says the image fits; a video is opened only after its size is known).
"""

from __future__ import annotations

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Largest encoded image accepted, in bytes (matches the gRPC receive limit for images)."""

MAX_IMAGE_PIXELS = 50_000_000
"""Largest decoded image, width x height, checked from the header before decoding."""

MAX_VIDEO_BYTES = 4 * 1024 * 1024 * 1024
"""Largest video file accepted, in bytes."""

MAX_VIDEO_DURATION_S = 4 * 3600.0
"""Longest video scanned, in seconds."""

MAX_VIDEO_FRAME_PIXELS = 8192 * 4320
"""Largest video frame (8K), width x height."""

DEFAULT_KEYFRAME_INTERVAL_S = 0.5
"""Keyframes are taken at least this often, in seconds, plus at every shot cut."""

DEFAULT_CUT_THRESHOLD = 0.5
"""Histogram distance (Bhattacharyya, 0..1) above which two consecutive frames are a cut."""

MIN_CUT_GAP_S = 0.25
"""Two cuts closer than this (seconds) are one cut: flashes and dissolves are not shots."""

ALLOWED_IMAGE_FORMATS = ("jpeg", "png", "webp")
"""Image formats decoded from bytes; anything else is refused before decoding."""

MAX_REFS_PER_BRAND = 32
"""Most reference images per brand: each one costs a feature match per frame."""

MAX_MEDIA_ID_CHARS = 1024
"""Longest media id (or live stream id) accepted anywhere: requests, scans and the store."""
