"""``onscreen weights list|fetch``: output and exit codes, on a manifest of local files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from serving.commands.cli import main
from vision.weights import WEIGHTS_DIR_ENV


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two good local entries (a, b) and one whose sha256 is wrong (bad)."""
    src = tmp_path / "src"
    src.mkdir()
    entries = []
    for name, data, sha in [
        ("a", b"alpha" * 1000, None),
        ("b", b"beta" * 1000, None),
        ("bad", b"gamma" * 1000, "e" * 64),
    ]:
        (src / f"{name}.bin").write_bytes(data)
        digest = sha or hashlib.sha256(data).hexdigest()
        entries.append(
            f'[[model]]\nname = "{name}"\nsource = "src/{name}.bin"\nsha256 = "{digest}"\n'
            f'file = "{name}.bin"\nlicense = "MIT"\nkind = "detector"\n'
        )
    path = tmp_path / "weights" / "manifest.toml"
    path.parent.mkdir()
    path.write_text("\n".join(entries), encoding="utf-8")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "w"))
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _row(out: str, name: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [name])


@pytest.mark.parametrize(
    "args, code, expect_out",
    [
        (["a", "b"], 0, ["a: fetched", "b: fetched"]),
        ([], 1, ["a: fetched", "bad: FAILED:", "does not match", "required and missing: bad"]),
        (["bad"], 1, ["bad: FAILED:", "required and missing: bad"]),
        (["--required", "a"], 0, ["a: fetched", "bad: FAILED:", "best effort, not fetched: bad"]),
        (["b", "--required", "a"], 0, ["b: fetched", "a: fetched"]),
        (["a", "--required", "bad"], 1, ["required and missing: bad"]),
    ],
)
def test_fetch_exit_codes(
    manifest: Path, capsys, args: list[str], code: int, expect_out: list[str]
) -> None:
    got, out, _ = _run(capsys, "weights", "--manifest", str(manifest), "fetch", *args)
    assert got == code, out
    for text in expect_out:
        assert text in out


def test_list_then_fetch_then_list(manifest: Path, capsys) -> None:
    code, out, _ = _run(capsys, "weights", "--manifest", str(manifest), "list")
    assert code == 0
    assert out.splitlines()[0].split() == [
        "NAME",
        "KIND",
        "SOURCE",
        "PRESENT",
        "VERIFIED",
        "LICENSE",
    ]
    assert _row(out, "a") == ["a", "detector", "src/a.bin", "no", "no", "MIT"]

    assert _run(capsys, "weights", "--manifest", str(manifest), "fetch", "a")[0] == 0
    code, out, _ = _run(capsys, "weights", "--manifest", str(manifest), "fetch", "a")
    assert code == 0 and "a: already present" in out
    _, out, _ = _run(capsys, "weights", "--manifest", str(manifest), "list")
    assert _row(out, "a")[3:5] == ["yes", "yes"] and _row(out, "b")[3:5] == ["no", "no"]


def test_unknown_name_is_exit_2_listing_known_names(manifest: Path, capsys) -> None:
    code, out, err = _run(capsys, "weights", "--manifest", str(manifest), "fetch", "zzz")
    assert code == 2 and out == ""
    assert "no weights called 'zzz'" in err and "known: a, b, bad" in err


def test_fetch_from_file_installs_after_checking(manifest: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy.bin"
    copy.write_bytes(b"alpha" * 1000)
    args = ("weights", "--manifest", str(manifest), "fetch", "a", "--from", str(copy))
    code, out, _ = _run(capsys, *args)
    assert code == 0 and "a: fetched" in out
    copy.write_bytes(b"not alpha")
    code, out, _ = _run(capsys, *args, "--force")
    assert code == 0, "the good file already installed stays: a is still present"
    assert "a: FAILED:" in out and "does not match" in out
    code, _, err = _run(
        capsys, "weights", "--manifest", str(manifest), "fetch", "--from", str(copy)
    )
    assert code == 2 and "name exactly one NAME" in err
