"""Batch scan planning that needs no model: media discovery, media ids, refusals up front."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.batch.scan import expand_media, media_id_for, plan_media, printable_name
from vision.errors import InvalidArgument
from vision.limits import MAX_MEDIA_ID_CHARS


def test_expand_media_recurses_sorted_and_keeps_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/2.mp4", "a.jpg", "notes.txt", "b/1.PNG"):
        (tmp_path / name).write_bytes(b"x")
    missing = tmp_path / "gone.mp4"
    got = expand_media([tmp_path, missing])
    assert got == [tmp_path / "a.jpg", tmp_path / "b/1.PNG", tmp_path / "b/2.mp4", missing]


@pytest.mark.parametrize(
    ("scheme", "expected"), [("name", "v.mp4"), ("stem", "v"), ("path", "d/v.mp4")]
)
def test_media_ids(scheme: str, expected: str) -> None:
    assert media_id_for(Path("d/v.mp4"), scheme) == expected


def test_unknown_media_id_scheme() -> None:
    with pytest.raises(ValueError, match="name, stem or path"):
        media_id_for(Path("v.mp4"), "hash")


def test_duplicate_media_ids_are_refused_before_scanning(tmp_path: Path, capsys) -> None:
    from serving.commands.cli import main

    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "same.jpg").write_bytes(b"\xff\xd8\xff")
    rules = Path(__file__).resolve().parents[3] / "examples" / "rules"
    code = main(
        ["scan", str(tmp_path / "x"), str(tmp_path / "y"), "--rules", str(rules), "--out",
         str(tmp_path / "o.jsonl"), "--quiet", "--random-weights"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "same.jpg" in err and "--media-id path" in err


def test_non_utf8_file_names_get_an_escaped_readable_id(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/\xff\xfe-latin1.mp4"
    path = Path(os.fsdecode(raw))
    assert media_id_for(path) == "\\xff\\xfe-latin1.mp4"  # backslash, x, f, f: valid text
    assert media_id_for(path, "stem") == "\\xff\\xfe-latin1"
    assert media_id_for(path).encode("utf-8")
    assert media_id_for(path, "path").encode("utf-8").endswith(b"\\xff\\xfe-latin1.mp4")
    assert printable_name("caf\u00e9.mp4") == "caf\u00e9.mp4"  # valid UTF-8 names are untouched


def test_media_ids_over_the_limit_are_refused_before_scanning(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d" * 200] * 6)
    deep.mkdir(parents=True)
    (deep / "v.mp4").write_bytes(b"x")
    assert plan_media([tmp_path]) == [deep / "v.mp4"]
    with pytest.raises(InvalidArgument, match=f"over the {MAX_MEDIA_ID_CHARS}-character limit"):
        plan_media([tmp_path], "path")
