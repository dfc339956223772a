"""Reading ``onscreen scan`` results back: the JSONL contract, validated, one media at a time.

The lines (DESIGN.md, "Output formats"): placements ``{"media", "campaign", "start_s", "end_s",
"score", "reasons", "rank"?, "bid_cpm"?, ...}``, errors ``{"media", "error"}`` and, from
``--explain``, one line per keyframe ``{"media", "t", "facts", "decisions"}`` (facts as
:func:`serving.facts_json.facts_to_json`; decisions ``{"campaign", "placed", "target",
"blocked", "evidence", "matched", "blocked_by", "why_not"?}``). Unknown keys are kept and
ignored, lines of an unknown shape are counted (a newer scan still reads); a line that is not a
JSON object with a ``media`` string, or a known line with a wrong field, is an OnscreenError
naming ``file:line``.

A scan writes each media's lines together, so consecutive lines of one media are one
:class:`MediaResults`, and a reader holds one media at a time, whatever the file's size.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision.errors import OnscreenError

__all__ = [
    "MAX_WHY_NOT_SHOWN",
    "BlockedSegment",
    "Keyframe",
    "MediaResults",
    "ResultsReader",
    "blocked_segments",
    "read_results",
    "reason_what",
    "score_of",
    "strongest_reasons",
]

MAX_WHY_NOT_SHOWN = 3
"""Distinct ``why_not`` texts kept per campaign and segment."""

_REASON_WHAT_KEYS = ("brand", "prompt", "iab", "label", "category", "example", "text")


@dataclass(frozen=True)
class Keyframe:
    """One ``--explain`` keyframe line: ``t`` (s), ``facts`` (facts_json shape) and one
    decision per campaign (dicts as written by the scan)."""

    t: float
    facts: Mapping[str, Any]
    decisions: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class MediaResults:
    """Everything the results say about one media: placements (as written, in file order),
    keyframes (ascending ``t``), and error messages."""

    media: str
    placements: tuple[Mapping[str, Any], ...] = ()
    keyframes: tuple[Keyframe, ...] = ()
    errors: tuple[str, ...] = ()


def _num(rec: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> float | None:
    v = rec.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise OnscreenError(f"{where}: {key!r} must be a finite number, got {v!r}")
    return float(v)


def _list_of_objects(rec: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    v = rec.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise OnscreenError(f"{where}: {key!r} must be a list of objects")
    return v


def _check_placement(rec: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(rec["campaign"], str):
        raise OnscreenError(f"{where}: 'campaign' must be a string, got {rec['campaign']!r}")
    start = _num(rec, "start_s", where)
    end = _num(rec, "end_s", where)
    assert start is not None and end is not None
    if start < 0 or end < start:
        raise OnscreenError(f"{where}: segment {start:g}..{end:g} s is not 0 <= start_s <= end_s")
    _num(rec, "score", where)
    _num(rec, "bid_cpm", where, required=False)
    _num(rec, "rank", where, required=False)
    _list_of_objects(rec, "reasons", where)
    return rec


def _check_keyframe(rec: dict[str, Any], where: str) -> Keyframe:
    t = _num(rec, "t", where)
    assert t is not None
    if t < 0:
        raise OnscreenError(f"{where}: 't' must be >= 0, got {t:g}")
    facts = rec["facts"]
    if not isinstance(facts, dict):
        raise OnscreenError(f"{where}: 'facts' must be an object")
    decisions = _list_of_objects(rec, "decisions", where)
    for d in decisions:
        if not isinstance(d.get("campaign"), str):
            raise OnscreenError(f"{where}: every decision needs a string 'campaign'")
    return Keyframe(t=t, facts=facts, decisions=tuple(decisions))


@dataclass
class ResultsReader:
    """Reads a results file line by line, grouping consecutive lines of one media."""

    path: Path
    ignored_lines: int = 0
    bytes_read: int = 0
    size: int = 0

    def media(self) -> Iterator[MediaResults]:
        try:
            f = self.path.open("rb")
            self.size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            raise OnscreenError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise OnscreenError(f"{self.path}: is a directory, not a results file") from None
        except OSError as exc:
            raise OnscreenError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        current: str | None = None
        placements: list[Mapping[str, Any]] = []
        keyframes: list[Keyframe] = []
        errors: list[str] = []
        with f:
            for lineno, raw in enumerate(f, 1):
                self.bytes_read += len(raw)
                where = f"{self.path}:{lineno}"
                text = raw.strip()
                if not text:
                    continue
                try:
                    rec = json.loads(text)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise OnscreenError(
                        f"{where}: not a JSON line ({exc}); is this `onscreen scan` output? "
                        "(a scan killed mid-write is completed by re-running it with --resume)"
                    ) from None
                if not isinstance(rec, dict):
                    raise OnscreenError(
                        f"{where}: expected a JSON object, got {type(rec).__name__}"
                    )
                media = rec.get("media")
                if not isinstance(media, str) or not media:
                    raise OnscreenError(f"{where}: 'media' must be a non-empty string")
                if media != current:
                    if current is not None:
                        yield _media_results(current, placements, keyframes, errors)
                    current, placements, keyframes, errors = media, [], [], []
                if "error" in rec:
                    errors.append(str(rec["error"]))
                elif "campaign" in rec:
                    placements.append(_check_placement(rec, where))
                elif "facts" in rec and "t" in rec:
                    keyframes.append(_check_keyframe(rec, where))
                else:
                    self.ignored_lines += 1
        if current is not None:
            yield _media_results(current, placements, keyframes, errors)


def _media_results(
    media: str,
    placements: list[Mapping[str, Any]],
    keyframes: list[Keyframe],
    errors: list[str],
) -> MediaResults:
    return MediaResults(
        media,
        tuple(placements),
        tuple(sorted(keyframes, key=lambda k: k.t)),
        tuple(errors),
    )


def read_results(path: Path) -> list[MediaResults]:
    """Every media in a results file, in file order (consecutive lines of one media together).

    Raises OnscreenError naming ``file:line`` for a line that is not a JSON object with a
    ``media`` string, or a placement/keyframe line with a wrong field.
    """
    return list(ResultsReader(path).media())


# ------------------------------------------------------------------------------- derivations


@dataclass(frozen=True)
class BlockedSegment:
    """A run of consecutive keyframes where an exclusion blocked ``campaign``.

    ``start_s`` is the first blocked keyframe, ``end_s`` the next keyframe after the run (or
    the media's end). ``targeted``: keyframes of the run where the target held (placements
    lost to brand safety). ``blocked_by``: the strongest hit per exclusion (reason dicts).
    """

    campaign: str
    start_s: float
    end_s: float
    keyframes: int
    targeted: int
    blocked_by: tuple[Mapping[str, Any], ...]
    why_not: tuple[str, ...] = ()


def reason_what(r: Mapping[str, Any]) -> str:
    """What a reason names (a brand, prompt, IAB category, face label, excluded class...), or
    "" for a kind this reader does not know."""
    for k in _REASON_WHAT_KEYS:
        if k in r:
            return str(r[k])
    return ""


def strongest_reasons(reasons: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One reason per (kind, what), the highest score, strongest first."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in reasons:
        key = (str(r.get("kind", "")), reason_what(r))
        if key not in best or score_of(r) > score_of(best[key]):
            best[key] = r
    return sorted(best.values(), key=score_of, reverse=True)


def score_of(r: Mapping[str, Any]) -> float:
    """A reason's or fact's ``score``, 0 when it has none (unknown shapes still sort)."""
    v = r.get("score")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def blocked_segments(keyframes: Sequence[Keyframe], duration_s: float) -> list[BlockedSegment]:
    """Runs of blocked keyframes per campaign, in (campaign, start) order."""
    runs: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for i, kf in enumerate(keyframes):
        for d in kf.decisions:
            if d.get("blocked") is True:
                runs.setdefault(str(d["campaign"]), []).append((i, d))
    out: list[BlockedSegment] = []
    for campaign in sorted(runs):
        hits = runs[campaign]
        j = 0
        while j < len(hits):
            k = j  # hits[j..k] are consecutive keyframes
            while k + 1 < len(hits) and hits[k + 1][0] == hits[k][0] + 1:
                k += 1
            first, last = hits[j][0], hits[k][0]
            end = keyframes[last + 1].t if last + 1 < len(keyframes) else duration_s
            decisions = [d for _, d in hits[j : k + 1]]
            why = [str(d["why_not"]) for d in decisions if d.get("why_not")]
            out.append(
                BlockedSegment(
                    campaign=campaign,
                    start_s=keyframes[first].t,
                    end_s=max(end, keyframes[last].t),
                    keyframes=k - j + 1,
                    targeted=sum(d.get("target") is True for d in decisions),
                    blocked_by=tuple(
                        strongest_reasons([r for d in decisions for r in d.get("blocked_by", [])])
                    ),
                    why_not=tuple(dict.fromkeys(why))[:MAX_WHY_NOT_SHOWN],
                )
            )
            j = k + 1
    return out
