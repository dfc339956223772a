"""What a scan writes per media (JSONL lines) and per scan (the Parquet table, durably)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from serving.batch.outputs import result_lines, write_parquet
from serving.batch.scan import MediaResult
from targeting.types import Placement, Reason


def _result(media: str, *campaigns: str) -> MediaResult:
    placements = tuple(
        Placement(
            campaign=c,
            media=media,
            start_s=1.0,
            end_s=4.5,
            score=0.7,
            reasons=(Reason("face", "1 face", 0.8, 1.5, (0.1, 0.2, 0.3, 0.4), "count >= 1"),),
            advertiser="Acme",
            bid_cpm=2.0,
            rank=rank,
        )
        for rank, c in enumerate(campaigns, 1)
    )
    return MediaResult(media, Path(media), placements=placements, keyframes=3)


def test_lines_of_a_result_and_of_an_error() -> None:
    lines = [json.loads(x) for x in result_lines(_result("v.mp4", "a", "b"), explain=False)]
    assert [(x["media"], x["campaign"], x["rank"]) for x in lines] == [
        ("v.mp4", "a", 1),
        ("v.mp4", "b", 2),
    ]
    assert lines[0]["reasons"][0]["kind"] == "face"
    failed = MediaResult("\\xff.mp4", Path("x"), error="\\xff.mp4: no such file")
    (line,) = result_lines(failed, explain=True)
    assert line.isascii() and json.loads(line) == {
        "media": "\\xff.mp4",
        "error": "\\xff.mp4: no such file",
    }


def test_parquet_replaces_the_table_durably_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "p.parquet"
    write_parquet(out, [_result("old.mp4", "x")])
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_parquet(out, [_result("v.mp4", "a", "b"), MediaResult("bad", Path("bad"), error="e")])
    rows = pq.read_table(out).to_pylist()
    assert [(r["media"], r["campaign"], r["rank"]) for r in rows] == [
        ("v.mp4", "a", 1),
        ("v.mp4", "b", 2),
    ]
    assert json.loads(rows[0]["reasons_json"])[0]["kind"] == "face"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet"]
    # the table's bytes reached the disk before the rename, and the rename itself after it
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / ".p.parquet."))
    assert synced[1] == str(tmp_path)


def test_a_placement_table_writes_the_lines_of_its_placements(tmp_path: Path) -> None:
    from serving.batch.outputs import placement_lines
    from targeting.match import match_table
    from tests.targeting.golden_match import inputs
    from tests.targeting.timelines import TODAY

    tl, cs, idx = inputs(tmp_path)
    table = match_table(tl[:60], cs, idx, today=TODAY, media="v")
    meta = {"metadata": {"show": "ünïcode"}}
    assert len(table) > 50
    assert placement_lines(table, meta) == placement_lines(list(table), meta)
    assert placement_lines(table, {}) == [json.dumps(p.to_json()) for p in table]
