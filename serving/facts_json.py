"""FrameFacts as JSON (the ``onscreen analyze --json`` contract) and as a table for people.

Shape per keyframe: ``faces``, ``logos``, ``safety``, ``concepts``, ``text`` (OCR lines, with
their ``text``) — each a list of objects with ``score`` (and ``box``, normalized ``[x0, y0, x1,
y1]``, where there is a box) — plus ``t`` (seconds) and ``media``. Other detector classes go
under ``objects``. A logo names its ``method`` (whose box it is) and ``sources``: every finder
that saw it (``matcher``, ``detector``; both for a fused match). Scores are rounded to 4 places: more digits are noise and make diffs
unreadable.
"""

from __future__ import annotations

from collections.abc import Sequence

from vision.types import LOGO_SOURCE_NAMES, Box, FrameFacts


def _box(box: Box | None) -> list[float] | None:
    return None if box is None else [round(v, 4) for v in box]


def facts_to_json(f: FrameFacts) -> dict[str, object]:
    """One keyframe's facts in the design's JSON shape."""
    out: dict[str, object] = {
        "media": f.media_id,
        "t": round(f.t, 3),
        "keyframe": f.reason,
        "faces": [
            {"label": d.label, "score": round(d.score, 4), "box": _box(d.box)}
            for d in f.detections
            if d.kind == "face"
        ],
        "logos": [
            {
                "brand": m.brand,
                "score": round(m.score, 4),
                "box": _box(m.box),
                "method": m.method,
                "sources": [
                    LOGO_SOURCE_NAMES[x] for x in (getattr(m, "sources", ()) or (m.method,))
                ],
            }
            for m in f.logos
        ],
        "safety": [
            {
                "category": s.category,
                "score": round(s.score, 4),
                "source": s.source,
                **({"box": _box(s.box)} if s.box is not None else {}),
                **({"label": s.label} if s.label else {}),
            }
            for s in f.safety
        ],
        "concepts": [{"id": c.id, "name": c.name, "score": round(c.score, 4)} for c in f.concepts],
        "text": [{"text": r.text, "score": round(r.score, 4), "box": _box(r.box)} for r in f.text],
        "objects": [
            {"kind": d.kind, "label": d.label, "score": round(d.score, 4), "box": _box(d.box)}
            for d in f.detections
            if d.kind != "face"
        ],
    }
    return out


def _fmt_box(box: Box | None) -> str:
    return "" if box is None else "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def facts_table_rows(facts: Sequence[FrameFacts]) -> list[tuple[str, str, str, str, str]]:
    """Rows of (t, what, label, score, box) for a human-readable table, one row per fact."""
    rows: list[tuple[str, str, str, str, str]] = []
    for f in facts:
        t = f"{f.t:7.2f}s"
        items: list[tuple[str, str, float, Box | None]] = []
        items += [("face", d.label, d.score, d.box) for d in f.detections if d.kind == "face"]
        items += [("logo", m.brand, m.score, m.box) for m in f.logos]
        items += [("safety", s.category, s.score, s.box) for s in f.safety]
        items += [("concept", f"{c.name} ({c.id})", c.score, None) for c in f.concepts]
        items += [("text", repr(r.text), r.score, r.box) for r in f.text]
        if not items:
            rows.append((t, "-", "nothing found", "", ""))
        for what, label, score, box in items:
            rows.append((t, what, label, f"{score:.3f}", _fmt_box(box)))
    return rows
