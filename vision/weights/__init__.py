"""Model weights: a manifest of where each file comes from, fetching it, and finding it again.

``weights/manifest.toml`` names every model file onscreen can load, with its source and sha256
(see the comment at the top of that file for the keys). Two separate moments use it:

- **fetch** (``onscreen weights fetch``, build time): download or copy each file, check its
  sha256 while writing, and move it into the weights directory atomically (a temp file in the
  same directory, then ``os.replace``), so a reader never sees half a file and a bad download
  leaves nothing behind.
- **resolve** (start-up): return the local path of a verified file or raise ``WeightsError``
  that names the command fixing it. Resolving never downloads: no request ever waits on a hub.

Verification is cached in a small sidecar next to each file (``.<file>.verified``: sha256, size,
mtime): hashing 600 MB of CLIP weights takes seconds, checking two numbers does not. A file
whose size or mtime changed since it was verified is hashed again.

Paths: the manifest is ``<repo>/weights/manifest.toml`` unless ``ONSCREEN_MANIFEST`` names
another; the weights directory is the manifest's directory unless ``ONSCREEN_WEIGHTS_DIR``
names another. Local sources with relative paths resolve against the manifest's directory's
parent (the repository root for the default manifest).
"""

from __future__ import annotations

from vision.weights.fetch import FetchResult, copy_verified, fetch
from vision.weights.manifest import (
    DEFAULT_MANIFEST,
    KINDS,
    MANIFEST_ENV,
    WEIGHTS_DIR_ENV,
    Manifest,
    WeightSpec,
    manifest_path,
    weights_dir,
)
from vision.weights.verify import WeightStatus, resolve, sha256_file, status

__all__ = [
    "DEFAULT_MANIFEST",
    "KINDS",
    "FetchResult",
    "MANIFEST_ENV",
    "Manifest",
    "WEIGHTS_DIR_ENV",
    "WeightSpec",
    "WeightStatus",
    "copy_verified",
    "fetch",
    "manifest_path",
    "resolve",
    "sha256_file",
    "status",
    "weights_dir",
]
