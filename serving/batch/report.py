"""``onscreen scan`` results -> one static HTML page an advertiser opens offline.

Input: the scan's JSONL, read one media at a time by :mod:`serving.batch.results_reader`
(``--explain`` keyframe lines when present).

Output, per media: a timeline (one row per campaign, segments to scale on the media's duration;
hover or click a segment for its score, rank, bid and reasons), the placements with their
reasons, blocked segments with what blocked them (runs of keyframes whose decision says
``blocked``; only ``--explain`` output has them, and the page says so when it is missing),
keyframe thumbnails decoded from the media files under ``media_root`` with the detected boxes
drawn over them, and the media's error lines.

Safety and size: every string from the results (media ids, campaign names, reasons, OCR text)
is HTML-escaped, the one script is allowed by its hash in the page's Content-Security-Policy,
and images are ``data:`` URIs (the page loads nothing). A media id is read as a file only when
it resolves inside ``media_root``, and only for media the scan could read (with placements or
keyframes); decoding keeps :mod:`vision.limits` but runs in this process. The caps below
bound what one media and the whole page can hold.
"""

from __future__ import annotations

import html
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.batch.report_assets import CSS, JS, JS_CSP_HASH
from serving.batch.results_reader import (
    MAX_WHY_NOT_SHOWN,
    BlockedSegment,
    Keyframe,
    MediaResults,
    ResultsReader,
    blocked_segments,
    reason_what,
    score_of,
    strongest_reasons,
)
from serving.batch.thumbnails import Thumbnail, media_duration_s, thumbnails_at
from vision.errors import MediaError, OnscreenError

__all__ = [
    "MAX_BLOCKED_BY_SHOWN",
    "MAX_BOXES_PER_THUMBNAIL",
    "MAX_MEDIA_DETAILED",
    "MAX_REASONS_SHOWN",
    "MAX_THUMBNAILS_PER_MEDIA",
    "MAX_THUMBNAIL_BYTES_TOTAL",
    "MAX_TIMELINE_ROWS",
    "MAX_UNPLACED_LISTED",
    "CampaignTotals",
    "ReportStats",
    "build_report",
    "write_report",
]

MAX_MEDIA_DETAILED = 1_000
"""Media drawn in full (timeline, tables, keyframes: ~15 KB of HTML each, plus thumbnails);
later ones get one row of counts, so a night's scan of 10,000 videos still opens."""
MAX_THUMBNAILS_PER_MEDIA = 12
"""Keyframe thumbnails shown per media (evenly spread over its keyframes)."""
MAX_THUMBNAIL_BYTES_TOTAL = 48 * 1024 * 1024
"""JPEG bytes embedded in one page, all media together; later media get no thumbnails."""
MAX_KEYFRAME_MARKS = 300
"""Keyframe ticks drawn on one timeline (evenly spread; the thumbnailed ones always)."""
MAX_BOXES_PER_THUMBNAIL = 24
"""Detected boxes drawn on one thumbnail (highest scores first)."""
MAX_REASONS_SHOWN = 8
"""Reasons listed per placement (the strongest per clause first); the rest are counted."""
MAX_BLOCKED_BY_SHOWN = 6
"""Distinct exclusions listed per blocked segment."""
MAX_TIMELINE_ROWS = 40
"""Campaign rows in one media's timeline; campaigns past it are listed by name only."""
MAX_UNPLACED_LISTED = 50
"""Campaigns explained (never placed here, and why) per media."""
MAX_ALSO_AT_SHOWN = 6
"""Other times a reason held, listed after it."""
MAX_CAPTION_DECISIONS = 6
"""Campaigns named under one thumbnail (placed, then blocked)."""
MIN_TIMELINE_SPAN_S = 1.0
"""Shortest timeline drawn, seconds (a still image's placements are 0 s long)."""
TICKS_PER_TIMELINE = 10
"""About this many time labels on a timeline axis."""
LABEL_INSIDE_BELOW = 0.08
"""A box whose top is above this (fraction of the frame height) has its label inside it."""
PROGRESS_EVERY_S = 2.0
"""How often progress goes to stderr while the page is built, seconds."""

_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2",
    "#edc948", "#9c755f", "#ff9da7", "#17becf", "#bab0ac",
)  # fmt: skip
_NICE_STEPS_S = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_BOX_KINDS = ("face", "logo", "text", "safety", "object")


def _duration(m: MediaResults, probed: float | None) -> float:
    ends = [float(p["end_s"]) for p in m.placements] + [k.t for k in m.keyframes]
    if probed is not None:
        ends.append(probed)
    return max(ends, default=0.0)


def _evenly(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (first and last included)."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


@dataclass(frozen=True)
class _Box:
    kind: str
    label: str
    score: float
    box: tuple[float, float, float, float]


def _as_box(v: Any) -> tuple[float, float, float, float] | None:
    if (
        isinstance(v, list)
        and len(v) == 4
        and all(isinstance(x, int | float) and math.isfinite(x) for x in v)
    ):
        x0, y0, x1, y1 = (min(max(float(x), 0.0), 1.0) for x in v)
        if x1 > x0 and y1 > y0:
            return (x0, y0, x1, y1)
    return None


def _fact_boxes(facts: Mapping[str, Any]) -> list[_Box]:
    keys = (
        ("faces", "face", ("label",)),
        ("logos", "logo", ("brand",)),
        ("text", "text", ("text",)),
        ("safety", "safety", ("category", "label")),
        ("objects", "object", ("label", "kind")),
    )
    out: list[_Box] = []
    for key, kind, label_keys in keys:
        items = facts.get(key)
        if not isinstance(items, list):
            continue
        for it in items:
            if not isinstance(it, dict) or (box := _as_box(it.get("box"))) is None:
                continue
            label = next((str(it[k]) for k in label_keys if it.get(k)), kind)
            out.append(_Box(kind, label, score_of(it), box))
    out.sort(key=lambda b: b.score, reverse=True)
    return out[:MAX_BOXES_PER_THUMBNAIL]


_REASON_BOX_KIND = {"face": "face", "logo": "logo", "text": "text", "exclusion": "safety"}


def _reason_boxes(reasons: Sequence[Mapping[str, Any]]) -> list[_Box]:
    out = []
    for r in reasons:
        if (box := _as_box(r.get("box"))) is not None:
            kind = _REASON_BOX_KIND.get(str(r.get("kind")), "object")
            out.append(_Box(kind, reason_what(r) or kind, score_of(r), box))
    out.sort(key=lambda b: b.score, reverse=True)
    return out[:MAX_BOXES_PER_THUMBNAIL]


# ----------------------------------------------------------------------------------- HTML bits


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _fmt_t(s: float) -> str:
    if s >= 60:
        m, sec = divmod(s, 60)
        h, m = divmod(int(m), 60)
        return f"{h}:{m:02d}:{sec:04.1f}" if h else f"{m}:{sec:04.1f}"
    return f"{s:.1f} s"


def _fmt_score(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def _pct(v: float) -> str:
    return f"{min(max(v, 0.0), 100.0):.3f}%"


def _reason_html(r: Mapping[str, Any]) -> str:
    kind = str(r.get("kind", "?"))
    what = reason_what(r)
    parts = [f"<b>{_e(kind)}</b>"]
    if what:
        parts.append(_e(what))
    parts.append(_e(_fmt_score(r.get("score"))))
    if isinstance(r.get("t"), int | float):
        parts.append(f"@ {_e(_fmt_t(float(r['t'])))}")
    box = _as_box(r.get("box"))
    if box is not None:
        parts.append("<span class=muted>[" + ", ".join(f"{v:.2f}" for v in box) + "]</span>")
    if r.get("detail"):
        parts.append(f"<span class=muted>({_e(r['detail'])})</span>")
    return " ".join(parts)


def _reasons_list(reasons: Sequence[Mapping[str, Any]], cap: int) -> str:
    """The strongest reason per clause, each with the other times the same clause held."""
    best = strongest_reasons(reasons)
    items = []
    for r in best[:cap]:
        key = (r.get("kind"), reason_what(r))
        times = sorted(
            {
                float(x["t"])
                for x in reasons
                if x is not r
                and (x.get("kind"), reason_what(x)) == key
                and isinstance(x.get("t"), int | float)
                and x.get("t") != r.get("t")
            }
        )
        also = ", ".join(_fmt_t(t) for t in times[:MAX_ALSO_AT_SHOWN])
        if len(times) > MAX_ALSO_AT_SHOWN:
            also += f" +{len(times) - MAX_ALSO_AT_SHOWN}"
        tail = f" <span class=muted>(also at {_e(also)})</span>" if also else ""
        items.append(f"<li>{_reason_html(r)}{tail}</li>")
    more = len(best) - cap
    if more > 0:
        items.append(f"<li class=muted>+{more} more</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<span class=muted>no reasons</span>"


def _placement_detail(p: Mapping[str, Any]) -> str:
    reasons = p.get("reasons", [])
    adv = f"<span>advertiser <b>{_e(p['advertiser'])}</b></span>" if p.get("advertiser") else ""
    return (
        f"<h4>{_e(p['campaign'])}</h4><div class=kv>"
        f"<span>{_e(_fmt_t(float(p['start_s'])))} – {_e(_fmt_t(float(p['end_s'])))}</span> "
        f"<span>score <b>{_e(_fmt_score(p.get('score')))}</b></span> "
        f"<span>rank <b>{_e(p.get('rank', '–'))}</b></span> "
        f"<span>bid CPM <b>{_e(p.get('bid_cpm', '–'))}</b></span> {adv}</div>"
        f"{_reasons_list(reasons, MAX_REASONS_SHOWN)}"
    )


def _blocked_detail(b: BlockedSegment) -> str:
    why = "".join(f"<li>{_e(w)}</li>" for w in b.why_not)
    return (
        f"<h4>{_e(b.campaign)} <span class=bad>blocked</span></h4><div class=kv>"
        f"<span>{_e(_fmt_t(b.start_s))} – {_e(_fmt_t(b.end_s))}</span> "
        f"<span>{b.keyframes} keyframe(s)</span> "
        f"<span>target held at {b.targeted}</span></div>"
        f"blocked by: {_reasons_list(b.blocked_by, MAX_BLOCKED_BY_SHOWN)}"
        + (f"why not: <ul>{why}</ul>" if why else "")
    )


def _ticks(span: float) -> str:
    step = next((s for s in _NICE_STEPS_S if span / s <= TICKS_PER_TIMELINE), _NICE_STEPS_S[-1])
    out, t = [], 0.0
    while t <= span + 1e-9:
        end = " end" if t + step > span + 1e-9 and t > 0 else ""
        out.append(
            f'<span class="tick{end}" style="left:{_pct(100 * t / span)}">{_e(_fmt_t(t))}</span>'
        )
        t += step
    return "".join(out)


# ----------------------------------------------------------------------------------- building


@dataclass
class CampaignTotals:
    """One campaign over the whole page: placements, seconds placed, media with a placement,
    blocked segments."""

    placements: int = 0
    seconds: float = 0.0
    media: int = 0
    blocked: int = 0


@dataclass
class ReportStats:
    """Counts for the page header and the command's last line."""

    media: int = 0
    failed: int = 0
    placements: int = 0
    blocked: int = 0
    keyframes: int = 0
    thumbnails: int = 0
    thumbnail_bytes: int = 0
    ignored_lines: int = 0
    explain: bool = False
    per_campaign: dict[str, CampaignTotals] = field(default_factory=dict)


@dataclass
class _Builder:
    media_root: Path | None
    stats: ReportStats = field(default_factory=ReportStats)
    thumbnails_capped: bool = False
    colors: dict[str, int] = field(default_factory=dict)

    def _color(self, campaign: str) -> str:
        """One color per campaign across the page: the palette in first-seen order, then
        golden-angle hues (always distinct from the previous few)."""
        i = self.colors.setdefault(campaign, len(self.colors))
        if i < len(_PALETTE):
            return _PALETTE[i]
        return f"hsl({round(i * 137.508) % 360} 55% 42%)"

    def _media_path(self, media: str) -> Path | None:
        """The file for a media id, only if it resolves inside ``media_root``."""
        if self.media_root is None:
            return None
        root = self.media_root.resolve()
        try:
            p = (root / media).resolve()
        except (OSError, ValueError):
            return None
        return p if p.is_relative_to(root) and p != root else None

    def _media_file(self, media: str) -> tuple[Path | None, str | None, float | None]:
        """The media's file (or a note saying why there is none) and its duration (s)."""
        if self.media_root is None:
            return None, "no --media-root given: boxes are drawn on blank frames", None
        path = self._media_path(media)
        if path is None:
            return None, "the media id does not name a file inside --media-root", None
        if not path.is_file():
            return None, "no such file under --media-root", None
        try:
            return path, None, media_duration_s(path)
        except MediaError as exc:
            return None, f"no thumbnails: {exc}", None

    def _thumbs(
        self, path: Path, times: Sequence[float]
    ) -> tuple[dict[float, Thumbnail], str | None]:
        """Thumbnails by requested time, within the page's budget; a note when there are none."""
        if self.stats.thumbnail_bytes >= MAX_THUMBNAIL_BYTES_TOTAL:
            self.thumbnails_capped = True
            return {}, "the page holds MAX_THUMBNAIL_BYTES_TOTAL of thumbnails already"
        try:
            thumbs = thumbnails_at(path, times)
        except MediaError as exc:
            return {}, f"no thumbnails: {exc}"
        out: dict[float, Thumbnail] = {}
        for th in thumbs:
            if self.stats.thumbnail_bytes + len(th.jpeg) > MAX_THUMBNAIL_BYTES_TOTAL:
                self.thumbnails_capped = True
                break
            out[th.t] = th
            self.stats.thumbnail_bytes += len(th.jpeg)
        self.stats.thumbnails += len(out)
        return out, None

    def _count(self, m: MediaResults, blocks: Sequence[BlockedSegment]) -> None:
        s = self.stats
        s.media += 1
        s.failed += bool(m.errors)
        s.keyframes += len(m.keyframes)
        s.explain |= bool(m.keyframes)
        s.placements += len(m.placements)
        s.blocked += len(blocks)
        for p in m.placements:
            tot = s.per_campaign.setdefault(str(p["campaign"]), CampaignTotals())
            tot.placements += 1
            tot.seconds += float(p["end_s"]) - float(p["start_s"])
        for name in {str(p["campaign"]) for p in m.placements}:
            s.per_campaign[name].media += 1
        for bs in blocks:
            s.per_campaign.setdefault(bs.campaign, CampaignTotals()).blocked += 1

    def media_row(self, m: MediaResults) -> str:
        """A media past MAX_MEDIA_DETAILED: one table row of counts (no file is read)."""
        blocks = blocked_segments(m.keyframes, _duration(m, None))
        self._count(m, blocks)
        camps = sorted({str(p["campaign"]) for p in m.placements})
        return (
            f"<tr data-compact><td>{_e(m.media)}</td><td class=num>{len(m.placements)}</td>"
            f"<td>{_e(', '.join(camps))}</td><td class=num>{len(blocks)}</td>"
            f"<td>{_e(' / '.join(m.errors))}</td></tr>"
        )

    def media_section(self, idx: int, m: MediaResults) -> str:
        """One media in full: timeline, placements, blocked segments, keyframes."""
        sid = f"m{idx}"

        # which keyframes get a thumbnail, and the boxes drawn on each
        shots: list[tuple[float, list[_Box], Keyframe | None]]
        if m.keyframes:
            chosen = [m.keyframes[i] for i in _evenly(len(m.keyframes), MAX_THUMBNAILS_PER_MEDIA)]
            shots = [(k.t, _fact_boxes(k.facts), k) for k in chosen]
        else:
            by_t: dict[float, list[Mapping[str, Any]]] = {}
            for p in m.placements:
                for r in p.get("reasons", []):
                    if isinstance(r.get("t"), int | float) and _as_box(r.get("box")):
                        by_t.setdefault(float(r["t"]), []).append(r)
            ts = sorted(by_t)
            ts = [ts[i] for i in _evenly(len(ts), MAX_THUMBNAILS_PER_MEDIA)]
            shots = [(t, _reason_boxes(by_t[t]), None) for t in ts]
        # a media the scan could not read is not opened again (it may be hostile)
        path, thumb_note, probed = (
            self._media_file(m.media) if m.placements or m.keyframes else (None, None, None)
        )
        thumbs: dict[float, Thumbnail] = {}
        if path is not None and shots:
            thumbs, thumb_note = self._thumbs(path, [t for t, _, _ in shots])
        duration = _duration(m, probed)
        still = duration == 0.0 and bool(m.placements or m.keyframes) and probed in (0.0, None)
        span = max(duration, MIN_TIMELINE_SPAN_S)
        blocks = blocked_segments(m.keyframes, duration)
        self._count(m, blocks)

        # timeline rows: campaigns with placements (most first), then blocked-only ones
        placed_by: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
        for i, p in enumerate(m.placements):
            placed_by.setdefault(str(p["campaign"]), []).append((i, p))
        blocked_by: dict[str, list[tuple[int, BlockedSegment]]] = {}
        for i, b in enumerate(blocks):
            blocked_by.setdefault(b.campaign, []).append((i, b))
        rows = sorted(placed_by, key=lambda c: (-len(placed_by[c]), c))
        rows += sorted(c for c in blocked_by if c not in placed_by)
        shown_rows, extra_rows = rows[:MAX_TIMELINE_ROWS], rows[MAX_TIMELINE_ROWS:]

        templates: list[str] = []
        row_html: list[str] = []
        for c in shown_rows:
            segs: list[str] = []
            color = self._color(c)
            for i, p in placed_by.get(c, []):
                pid = f"{sid}-p{i}"
                a, z = float(p["start_s"]), float(p["end_s"])
                templates.append(
                    f'<template id="{pid}"><div class=detail>{_placement_detail(p)}</div></template>'
                )
                left, width = (0.0, 100.0) if still else (100 * a / span, 100 * (z - a) / span)
                segs.append(
                    f'<button type=button class="seg placed" data-placement data-detail="{pid}" '
                    f'style="left:{_pct(left)};width:{_pct(width)};'
                    f'background:{color}" '
                    f'aria-label="{_e(c)} {_e(_fmt_t(a))} to {_e(_fmt_t(z))}"></button>'
                )
            for i, bs in blocked_by.get(c, []):
                bid = f"{sid}-b{i}"
                templates.append(
                    f'<template id="{bid}"><div class=detail>{_blocked_detail(bs)}</div></template>'
                )
                segs.append(
                    f'<button type=button class="seg blocked" data-blocked data-detail="{bid}" '
                    f'style="left:{_pct(100 * bs.start_s / span)};'
                    f'width:{_pct(100 * (bs.end_s - bs.start_s) / span)}" '
                    f'aria-label="{_e(c)} blocked {_e(_fmt_t(bs.start_s))} to '
                    f'{_e(_fmt_t(bs.end_s))}"></button>'
                )
            row_html.append(
                f'<div class=row data-campaign="{_e(c)}"><div class=label title="{_e(c)}">'
                f'<span class=swatch style="background:{color}"></span>{_e(c)}</div>'
                f"<div class=track>{''.join(segs)}</div></div>"
            )
        shot_ts = {t for t, _, _ in shots}
        marked = sorted(
            shot_ts | {m.keyframes[i].t for i in _evenly(len(m.keyframes), MAX_KEYFRAME_MARKS)}
        )
        marks = "".join(
            f'<a class="kfmark{" shown" if t in shot_ts else ""}" '
            + (f'href="#{sid}-k{_t_id(t)}" ' if t in shot_ts else "")
            + f'style="left:{_pct(100 * t / span)}" title="keyframe {_e(_fmt_t(t))}"></a>'
            for t in (marked if m.keyframes else ())
        )
        if m.keyframes and not still:
            row_html.append(
                "<div class=row><div class=label>keyframes</div>"
                f"<div class=track>{marks}</div></div>"
            )
        axis = (
            ""
            if still
            else f"<div class='row axis'><div class=label></div><div class=track>{_ticks(span)}</div></div>"
        )

        if not (m.placements or m.keyframes):
            meta = "could not be scanned" if m.errors else "no placements"
        else:
            length = "still image" if still else _fmt_t(duration)
            meta = (
                f"{length} · {len(m.keyframes)} keyframe(s) · {len(m.placements)} placement(s) · "
                f"{len(blocks)} blocked segment(s)"
            )
        parts = [
            f'<section class=media id="{sid}" data-media="{_e(m.media)}" '
            f'data-search="{_e(" ".join([m.media, *rows]).lower())}">',
            f"<h2>{_e(m.media)}</h2>",
            f"<div class=muted>{_e(meta)}</div>",
        ]
        parts += [f"<div class=error data-error>{_e(err)}</div>" for err in m.errors]
        if shown_rows or (m.keyframes and not still):
            parts.append(f"<div class=timeline>{''.join(row_html)}{axis}</div>")
            if extra_rows:
                parts.append(
                    f"<div class=muted>{len(extra_rows)} more campaign(s) not drawn "
                    f"(MAX_TIMELINE_ROWS={MAX_TIMELINE_ROWS}): {_e(', '.join(extra_rows))}</div>"
                )
            parts.append("<div class=pinned hidden></div>" if m.placements or blocks else "")
        parts.append(self._placements_table(sid, m))
        parts.append(
            self._blocked_table(sid, blocks, explain=bool(m.keyframes), failed=bool(m.errors))
        )
        parts.append(self._unplaced(m, placed_by, blocked_by))
        if shots:
            parts.append(self._strip(sid, shots, thumbs, thumb_note, explain=bool(m.keyframes)))
        parts.append("".join(templates))
        parts.append("</section>")
        return "".join(parts)

    def _placements_table(self, sid: str, m: MediaResults) -> str:
        if not m.placements:
            if m.errors and not m.keyframes:
                return ""
            return "<h3>Placements</h3><div class=muted>no campaign fits this media</div>"
        rows = []
        for i, p in enumerate(m.placements):
            adv = f"<div class=muted>{_e(p['advertiser'])}</div>" if p.get("advertiser") else ""
            rows.append(
                f'<tr id="row-{sid}-p{i}" data-row><td class=num>{_e(p.get("rank", "–"))}</td>'
                f"<td>{_e(p['campaign'])}{adv}</td>"
                f"<td class=num>{_e(_fmt_t(float(p['start_s'])))} – "
                f"{_e(_fmt_t(float(p['end_s'])))}</td>"
                f"<td class=num>{_e(_fmt_score(p.get('score')))}</td>"
                f"<td class=num>{_e(p.get('bid_cpm', '–'))}</td>"
                f"<td>{_reasons_list(p.get('reasons', []), MAX_REASONS_SHOWN)}</td></tr>"
            )
        return (
            "<h3>Placements</h3><table><thead><tr><th>rank</th><th>campaign</th><th>segment</th>"
            "<th>score</th><th>bid CPM</th><th>reasons</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def _blocked_table(
        self, sid: str, blocks: Sequence[BlockedSegment], *, explain: bool, failed: bool
    ) -> str:
        if not explain:
            if failed:
                return ""
            return (
                "<h3>Blocked segments</h3><div class='note' data-no-explain>Not known: these "
                "results have no <code>--explain</code> lines for this media (run "
                "<code>onscreen scan --explain</code> to see what brand safety blocked)</div>"
            )
        if not blocks:
            return "<h3>Blocked segments</h3><div class=muted>nothing was blocked</div>"
        rows = []
        for i, b in enumerate(blocks):
            why = "".join(f"<div class=muted>{_e(w)}</div>" for w in b.why_not)
            rows.append(
                f'<tr id="row-{sid}-b{i}" data-blocked-row><td>{_e(b.campaign)}</td>'
                f"<td class=num>{_e(_fmt_t(b.start_s))} – {_e(_fmt_t(b.end_s))}</td>"
                f"<td class=num>{b.keyframes} ({b.targeted} targeted)</td>"
                f"<td>{_reasons_list(b.blocked_by, MAX_BLOCKED_BY_SHOWN)}{why}</td></tr>"
            )
        return (
            "<h3>Blocked segments</h3><table><thead><tr><th>campaign</th><th>segment</th>"
            "<th>keyframes</th><th>blocked by</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def _unplaced(
        self,
        m: MediaResults,
        placed: Mapping[str, object],
        blocked: Mapping[str, object],
    ) -> str:
        """Campaigns the scan considered that neither placed nor were blocked here, and why."""
        seen: dict[str, list[Mapping[str, Any]]] = {}
        for k in m.keyframes:
            for d in k.decisions:
                c = str(d["campaign"])
                if c not in placed and c not in blocked:
                    seen.setdefault(c, []).append(d)
        if not seen:
            return ""
        items = []
        for c in sorted(seen)[:MAX_UNPLACED_LISTED]:
            ds = seen[c]
            targeted = sum(d.get("target") is True for d in ds)
            whys = list(dict.fromkeys(str(d["why_not"]) for d in ds if d.get("why_not")))
            why = "; ".join(whys[:MAX_WHY_NOT_SHOWN]) or (
                "the target never held" if not targeted else "segments too short to place"
            )
            items.append(
                f"<li><b>{_e(c)}</b>: {_e(why)} "
                f"<span class=muted>(target held at {targeted} of {len(ds)} keyframes)</span></li>"
            )
        more = len(seen) - MAX_UNPLACED_LISTED
        tail = f"<li class=muted>+{more} more</li>" if more > 0 else ""
        return (
            f"<details><summary>{len(seen)} campaign(s) not placed here, and why</summary>"
            f"<ul>{''.join(items)}{tail}</ul></details>"
        )

    def _strip(
        self,
        sid: str,
        shots: Sequence[tuple[float, list[_Box], Keyframe | None]],
        thumbs: Mapping[float, Thumbnail],
        note: str | None,
        *,
        explain: bool,
    ) -> str:
        figs = []
        for t, boxes, kf in shots:
            th = thumbs.get(t)
            ratio = f"{th.width} / {th.height}" if th else "16 / 9"
            img = (
                f'<img alt="frame at {_e(_fmt_t(t))}" src="{th.data_uri}" '
                f'width="{th.width}" height="{th.height}" data-thumb>'
                if th
                else "<div class=nothumb>no thumbnail</div>"
            )
            box_html = "".join(
                f'<div class="box {b.kind}" data-box="{b.kind}" '
                f'style="left:{_pct(100 * b.box[0])};top:{_pct(100 * b.box[1])};'
                f"width:{_pct(100 * (b.box[2] - b.box[0]))};"
                f'height:{_pct(100 * (b.box[3] - b.box[1]))}" '
                f'title="{_e(b.kind)} {_e(b.label)} {b.score:.2f}">'
                f"<span{' class=in' if b.box[1] < LABEL_INSIDE_BELOW else ''}>"
                f"{_e(b.label)} {b.score:.2f}</span></div>"
                for b in boxes
            )
            caption = self._caption(t, kf)
            figs.append(
                f'<figure class=kf id="{sid}-k{_t_id(t)}" data-keyframe data-t="{t:g}">'
                f'<div class=frame style="aspect-ratio:{ratio}">{img}{box_html}</div>'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        head = "Keyframes" if explain else "Frames of the placements' reasons"
        n_note = f"<div class=muted>{_e(note)}</div>" if note else ""
        return f"<h3>{head}</h3>{n_note}<div class=strip>{''.join(figs)}</div>"

    def _caption(self, t: float, kf: Keyframe | None) -> str:
        head = f"<b>{_e(_fmt_t(t))}</b>"
        if kf is None:
            return head
        facts = kf.facts
        if facts.get("keyframe"):
            head += f" <span class=muted>({_e(facts['keyframe'])})</span>"
        lines: list[str] = []
        concepts = facts.get("concepts")
        if isinstance(concepts, list) and concepts:
            names = [
                str(c.get("name", c.get("id", "?"))) for c in concepts[:3] if isinstance(c, dict)
            ]
            lines.append("<li>" + _e(", ".join(names)) + "</li>")
        texts = facts.get("text")
        if isinstance(texts, list) and texts:
            read = [str(x.get("text", "")) for x in texts[:4] if isinstance(x, dict)]
            lines.append("<li>text: " + _e(" · ".join(f"“{r}”" for r in read)) + "</li>")
        placed = [str(d["campaign"]) for d in kf.decisions if d.get("placed") is True]
        blocked = [str(d["campaign"]) for d in kf.decisions if d.get("blocked") is True]
        if placed:
            lines.append(_capped_item("ok", "fits", placed))
        if blocked:
            lines.append(_capped_item("bad", "blocked", blocked))
        return head + (f"<ul>{''.join(lines)}</ul>" if lines else "")


def _t_id(t: float) -> str:
    return f"{round(t * 1000)}"


def _header(title: str, source: Path, s: ReportStats, *, detailed: int, capped: bool) -> str:
    legend = "".join(
        f'<label><input type=checkbox checked data-kind="{k}"> '
        f'<span class=swatch style="background:var(--{k})"></span>{k}</label>'
        for k in _BOX_KINDS
    )
    notes = []
    if not s.explain and s.media:
        notes.append(
            "<div class='note' data-no-explain>These results were written without "
            "<code>--explain</code>: the page shows placements and their reasons, but not "
            "blocked segments nor what the models saw at each keyframe. Run "
            "<code>onscreen scan --explain</code> for those.</div>"
        )
    if capped:
        notes.append(
            f"<div class=note>Thumbnails stop after {MAX_THUMBNAIL_BYTES_TOTAL // 2**20} MiB "
            "(MAX_THUMBNAIL_BYTES_TOTAL): later media show boxes on blank frames.</div>"
        )
    if s.ignored_lines:
        notes.append(
            f"<div class=muted>{s.ignored_lines} line(s) of a shape this report does not know "
            "were skipped.</div>"
        )
    camp_rows = "".join(
        f"<tr><td>{_e(c)}</td><td class=num>{v.placements}</td><td class=num>{v.media}</td>"
        f"<td class=num>{_e(_fmt_t(v.seconds))}</td><td class=num>{v.blocked}</td></tr>"
        for c, v in sorted(s.per_campaign.items(), key=lambda kv: (-kv[1].placements, kv[0]))
    )
    camp_table = (
        "<details open><summary>Campaigns</summary><table><thead><tr><th>campaign</th>"
        "<th>placements</th><th>media</th><th>time placed</th><th>blocked segments</th></tr>"
        f"</thead><tbody>{camp_rows}</tbody></table></details>"
        if camp_rows
        else ""
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<header class=page><h1>{_e(title)}</h1>"
        f"<div class=muted>{_e(source.name)} · generated {now} · "
        f"<span id=shown>{detailed}</span> of {s.media} media shown · {s.failed} with errors · "
        f"{s.placements} placement(s) · {s.blocked} blocked segment(s)</div>"
        f"{''.join(notes)}"
        "<div class=toolbar><input id=filter type=search placeholder='filter media or campaign' "
        f"aria-label='filter media or campaign'><span class=legend>boxes: {legend}</span></div>"
        f"{camp_table}</header>"
    )


def build_report(
    results: Path,
    *,
    media_root: Path | None = None,
    title: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, ReportStats]:
    """The page (one HTML string) for a results file, and its counts.

    ``media_root``: where the media files are (a result's media id is its file name, or a
    path relative to it); without it there are no thumbnails. ``progress`` is called with a
    short line every ``PROGRESS_EVERY_S`` seconds and once at the end. Raises OnscreenError for
    an unreadable or malformed results file (see :func:`read_results`), or one with no lines.
    """
    reader = ResultsReader(results)
    builder = _Builder(media_root)
    sections: list[str] = []
    compact: list[str] = []
    last = time.monotonic()
    for idx, m in enumerate(reader.media()):
        if idx < MAX_MEDIA_DETAILED:
            sections.append(builder.media_section(idx, m))
        else:
            compact.append(builder.media_row(m))
        if progress is not None and time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            pct = 100 * reader.bytes_read / reader.size if reader.size else 100.0
            progress(
                f"report: {pct:.0f}% of {results.name}, {builder.stats.media} media, "
                f"{builder.stats.thumbnails} thumbnails"
            )
    stats = builder.stats
    stats.ignored_lines = reader.ignored_lines
    if not stats.media:
        raise OnscreenError(f"{results}: no result lines (is this `onscreen scan` output?)")
    if progress is not None:
        progress(
            f"report: {stats.media} media, {stats.placements} placements, "
            f"{stats.blocked} blocked segments, {stats.thumbnails} thumbnails"
        )
    detailed = len(sections)
    if compact:
        sections.append(
            f"<section class=compact><h2>{len(compact)} more media</h2><div class=muted>"
            f"Past the first {MAX_MEDIA_DETAILED} (MAX_MEDIA_DETAILED), media are listed by "
            "their counts only: report a smaller results file to see them in full.</div>"
            "<table><thead><tr><th>media</th><th>placements</th><th>campaigns</th>"
            f"<th>blocked segments</th><th>error</th></tr></thead><tbody>{''.join(compact)}"
            "</tbody></table></section>"
        )
    page_title = title or f"onscreen report: {results.name}"
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src '{JS_CSP_HASH}'; base-uri 'none'; form-action 'none'"
    )
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_e(page_title)}</title><style>{CSS}</style></head><body>"
        f"{_header(page_title, results, stats, detailed=detailed, capped=builder.thumbnails_capped)}"
        f"<main>{''.join(sections)}</main><div id=tip hidden></div>"
        f"<script>{JS}</script></body></html>\n"
    )
    return page, stats


def write_report(page: str, out: Path) -> None:
    """Write the page atomically (a reader never sees half a page)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)


def _capped_item(css: str, label: str, names: list[str]) -> str:
    """One caption line naming at most ``MAX_CAPTION_DECISIONS`` campaigns, then ``+N``."""
    more = len(names) - MAX_CAPTION_DECISIONS
    tail = f" +{more}" if more > 0 else ""
    return (
        f"<li class={css}>{label}: " + _e(", ".join(names[:MAX_CAPTION_DECISIONS])) + tail + "</li>"
    )
