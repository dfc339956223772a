"""Batch scanning pieces that need no model: media discovery, ids, the crash-safe sink."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.batch.scan import JsonlSink, expand_media, media_id_for


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


def test_sink_resume_truncates_a_torn_media_and_remembers_done_ones(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    sink = JsonlSink(out)
    sink.write("a", ['{"media": "a", "campaign": "x"}'])
    sink.write("b", [])  # a media with no placement still counts as done
    sink.close()
    with open(out, "a") as f:
        f.write('{"media": "c", "camp')  # killed mid-write
    with open(out.with_name("o.jsonl.progress"), "a") as f:
        f.write('{"media": "c", "off')  # and mid-checkpoint
    resumed = JsonlSink(out, resume=True)
    assert resumed.done == {"a", "b"}
    resumed.write("c", ['{"media": "c", "error": "x"}'])
    resumed.close()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == [{"media": "a", "campaign": "x"}, {"media": "c", "error": "x"}]


def test_sink_without_resume_starts_fresh(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text('{"old": 1}\n')
    sink = JsonlSink(out)
    assert sink.done == set()
    sink.close()
    assert out.read_text() == ""


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
