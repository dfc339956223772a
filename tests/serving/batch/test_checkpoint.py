"""The crash-safe JSONL sink: a media's lines then its checkpoint; resume drops a torn tail."""

from __future__ import annotations

import json
from pathlib import Path

from serving.batch.checkpoint import JsonlSink


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
