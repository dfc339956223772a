"""What a scan writes for each media: its JSONL lines, and the Parquet table of a whole scan.

JSONL contract (DESIGN.md): one JSON object a line; a placement is
``{"media", "campaign", "start_s", "end_s", "score", "reasons": [...]}`` (plus extra fields),
a media that could not be processed is ``{"media", "error"}``. With ``explain`` each keyframe
adds ``{"media", "t", "facts", "decisions"}``. Lines are ASCII (``json.dumps`` escapes the
rest), so any media id, even one escaped from a non-UTF-8 file name, is written safely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from serving.facts_json import facts_to_json
from targeting.match import FrameDecision, PlacementTable
from targeting.types import Placement
from vision.atomic_write import atomic_write

if TYPE_CHECKING:
    from serving.batch.scan import MediaResult

__all__ = ["placement_lines", "result_lines", "write_parquet", "write_parquet_from_jsonl"]


def result_lines(result: MediaResult, *, explain: bool) -> list[str]:
    """The JSONL lines of one media: an error line, or its placements (rank order) followed,
    with ``explain``, by one line per keyframe with its facts and every campaign's decision."""
    if result.error is not None:
        return [json.dumps({"media": result.media, "error": result.error})]
    meta = {"metadata": dict(result.metadata)} if result.metadata else {}
    lines = placement_lines(result.placements, meta)
    if explain:
        by_t: dict[float, list[FrameDecision]] = {}
        for d in result.decisions:
            by_t.setdefault(d.t, []).append(d)
        for f in result.facts:
            facts = facts_to_json(f)
            t = facts.pop("t")
            decisions = [d.to_json() for d in by_t.get(f.t, [])]
            lines.append(
                json.dumps({"media": result.media, "t": t, "facts": facts, "decisions": decisions})
            )
    return lines


def placement_lines(placements: Sequence[Placement], extra: Mapping[str, object]) -> list[str]:
    """``json.dumps({**p.to_json(), **extra})`` per placement; a ``PlacementTable`` writes the
    same text from its columns (``PlacementTable.json_lines``: no Placement objects)."""
    if isinstance(placements, PlacementTable):
        return placements.json_lines(extra)
    return [json.dumps({**p.to_json(), **extra}) for p in placements]


def write_parquet(path: Path, results: Sequence[MediaResult]) -> None:
    """Placements as a Parquet table (reasons as a JSON string column), written atomically and
    durably (:func:`vision.atomic_write.atomic_write`): a reader never sees half a table."""

    rows = [{**p.to_json(), "metadata": r.metadata} for r in results for p in r.placements]
    _write_rows(path, rows)


def write_parquet_from_jsonl(path: Path, jsonl: Path) -> None:
    """The Parquet table of every placement line of a scan's JSONL output, atomically.

    Why from the JSONL: it is the checkpointed record of every media done, by this run and by
    the interrupted runs before a ``--resume``, each exactly once; a table built from it has no
    missing and no duplicate row whenever the scan was killed (rebuilt at the end of each run,
    replacing the previous table in one rename).
    """
    rows = []
    with jsonl.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if "campaign" in rec:
                rec.setdefault("metadata", None)
                rows.append(rec)
    _write_rows(path, rows)


def _write_rows(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "media": [r["media"] for r in rows],
            "campaign": [r["campaign"] for r in rows],
            "start_s": pa.array([r["start_s"] for r in rows], pa.float64()),
            "end_s": pa.array([r["end_s"] for r in rows], pa.float64()),
            "score": pa.array([r["score"] for r in rows], pa.float64()),
            "rank": pa.array([r["rank"] for r in rows], pa.int32()),
            "bid_cpm": pa.array([r["bid_cpm"] for r in rows], pa.float64()),
            "advertiser": [r["advertiser"] for r in rows],
            "reasons_json": [json.dumps(r["reasons"]) for r in rows],
            "metadata_json": pa.array(
                [json.dumps(r["metadata"]) if r["metadata"] else None for r in rows], pa.string()
            ),
        }
    )

    def write(f: BinaryIO) -> None:
        pq.write_table(table, f)

    path.parent.mkdir(parents=True, exist_ok=True)  # like --out: missing parents are created
    atomic_write(path, write)
