"""Manifests: JSONL and CSV, paths relative to the manifest, metadata kept, bad lines reported
as FILE:LINE (and scanned as error lines), unusable manifests and duplicate ids refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.batch.manifest import ManifestEntry, ManifestProblem, read_manifest
from vision.errors import InvalidArgument
from vision.limits import MAX_MEDIA_ID_CHARS


def test_jsonl_entries_metadata_relative_paths_and_bad_lines(tmp_path: Path) -> None:
    m = tmp_path / "lists" / "m.jsonl"
    m.parent.mkdir()
    long = "x" * (MAX_MEDIA_ID_CHARS + 1)
    m.write_text(
        '{"media_id": "ep1", "path": "v/ep1.mp4", "show": "Cooking", "season": 2}\n'
        "\n"
        '{"media_id": "ep2", "path": "/abs/ep2.mp4"}\n'
        "{not json\n"
        "[1, 2]\n"
        '{"media_id": "ep5"}\n'
        '{"path": "x.mp4"}\n'
        f'{{"media_id": "{long}", "path": "y.mp4"}}\n'
    )
    entries, problems = read_manifest(m)
    assert entries == [
        ManifestEntry("ep1", m.parent / "v/ep1.mp4", {"show": "Cooking", "season": 2}, f"{m}:1"),
        ManifestEntry("ep2", Path("/abs/ep2.mp4"), {}, f"{m}:3"),
    ]
    assert [str(p) for p in problems] == [
        f"{m}:4: not JSON (Expecting property name enclosed in double quotes)",
        f"{m}:5: expected an object, got list",
        f"{m}:6: path must be a non-empty string, got None",
        f"{m}:7: media_id must be a non-empty string, got None",
        f"{m}:8: media_id is over the {MAX_MEDIA_ID_CHARS}-character limit",
    ]
    assert [p.media for p in problems] == [
        "m.jsonl:4",
        "m.jsonl:5",
        "ep5",
        "m.jsonl:7",
        "m.jsonl:8",
    ]


def test_csv_entries_with_metadata_columns(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text('media_id,path,show\nep1,ep1.mp4,"Cooking, live"\n,nameless.mp4,x\n')
    entries, problems = read_manifest(m)
    assert entries == [
        ManifestEntry("ep1", tmp_path / "ep1.mp4", {"show": "Cooking, live"}, f"{m}:2")
    ]
    assert problems == [
        ManifestProblem("m.csv:3", f"{m}:3", "media_id must be a non-empty string, got ''")
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.txt", "x", "{m}: a manifest must be .jsonl (or .ndjson, .json) or .csv, got '.txt'"),
        ("gone.jsonl", None, "{m}: no such manifest"),
        ("m.jsonl", b"\xff\xfe", "{m}: the manifest is not UTF-8 text (invalid start byte)"),
        ("m.csv", "id,file\n", "{m}:1: the CSV header must name the columns media_id and path (missing: media_id, path; got: id, file)"),
        ("m.jsonl", '{"media_id": "a", "path": "1.mp4"}\n{"media_id": "a", "path": "2.mp4"}\n', "{m}:2: media_id 'a' is already on line 1: each media needs its own id"),
    ],
)  # fmt: skip
def test_unusable_manifests_and_duplicate_ids_are_refused(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    m = tmp_path / name
    if isinstance(content, bytes):
        m.write_bytes(content)
    elif content is not None:
        m.write_text(content)
    with pytest.raises(InvalidArgument) as got:
        read_manifest(m)
    assert str(got.value) == message.format(m=m)
