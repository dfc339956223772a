"""Hand-written ``onscreen scan --explain`` results in the exact output contract (DESIGN.md).

The media is the standard 10 s test video (tests/vision/videos.py: bus 0-2.5 s, zidane
2.5-5 s, astronaut 5-7.3 s, coffee 7.3-10 s), scanned at 0.5 s plus its cuts. What the lines say
(and what a report of them must show):

- ``scene.mp4``: 4 placements (presenter 2.5-5.0, acme-logo 5.0-7.3, beer-brand 9.5-10.0 and
  a second presenter 0.0-1.0), 2 blocked segments (beer-brand 7.3-9.5 by safety ``alcohol``,
  presenter 9.0-10.0 by ``violence``), a campaign never placed (ghost, with a ``why_not``),
  and one line of a shape the report does not know;
- ``pin.jpg``: a still image with 1 placement;
- ``broken.mp4``: an error line;
- a hostile media id, campaign name, reason, OCR text and ``why_not``, each markup that would
  run script if the page did not escape it: 1 placement, 1 keyframe.
"""

from __future__ import annotations

import json
from typing import Any

XSS_MEDIA = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">.mp4'
XSS_CAMPAIGN = '"><svg onload="window.__pwned=3">'
XSS_PROMPT = "</template><script>window.__pwned=4</script>"
XSS_TEXT = "<img src=x onerror=window.__pwned=5>"
XSS_WHY = "</li><script>window.__pwned=6</script>"
XSS_PAYLOADS = (XSS_MEDIA, XSS_CAMPAIGN, XSS_PROMPT, XSS_TEXT, XSS_WHY)

SCENE_KEYFRAMES = tuple(sorted({round(0.5 * i, 3) for i in range(20)} | {7.3}))
"""Keyframe times of scene.mp4: every 0.5 s plus the cut at 7.3 s (2.5 and 5.0 are on the grid)."""
EXPECTED_BLOCKED = {"beer-brand": (7.3, 9.5), "presenter": (9.0, 10.0)}
"""Blocked segments of scene.mp4 the report must derive from the decisions."""

FACE_BOX = [0.42, 0.08, 0.61, 0.52]
LOGO_BOX = [0.6, 0.78, 0.86, 0.93]
TEXT_BOX = [0.62, 0.8, 0.84, 0.9]
BOTTLE_BOX = [0.12, 0.3, 0.3, 0.85]


def _placement(media: str, campaign: str, start: float, end: float, rank: int, **kw: Any) -> dict:
    reasons = kw.pop("reasons")
    return {
        "media": media,
        "campaign": campaign,
        "start_s": start,
        "end_s": end,
        "score": kw.pop("score", 0.8),
        "reasons": reasons,
        "advertiser": kw.pop("advertiser", ""),
        "bid_cpm": kw.pop("bid_cpm", 1.0),
        "rank": rank,
    }


def _reason(kind: str, key: str, what: str, score: float, t: float, box=None, detail=None) -> dict:
    r: dict[str, Any] = {"kind": kind, key: what, "score": score, "t": t}
    if box is not None:
        r["box"] = box
    if detail:
        r["detail"] = detail
    return r


def _decision(campaign: str, *, target: bool, blocked_by: list | None = None, **kw: Any) -> dict:
    blocked = bool(blocked_by)
    d = {
        "campaign": campaign,
        "placed": target and not blocked,
        "target": target,
        "blocked": blocked,
        "evidence": 0.8 if target else 0.0,
        "matched": kw.pop("matched", []),
        "blocked_by": blocked_by or [],
    }
    d.update(kw)
    return d


def _scene_keyframe(t: float) -> dict:
    faces = [{"label": "face_male", "score": 0.81, "box": FACE_BOX}] if 2.5 <= t < 5.0 else []
    if t < 1.0:
        faces = [{"label": "face_female", "score": 0.55, "box": [0.1, 0.2, 0.2, 0.4]}]
    logos = (
        [{"brand": "acme", "score": 0.93, "box": LOGO_BOX, "method": "features"}]
        if 5.0 <= t < 7.3
        else []
    )
    text = [{"text": "ACME", "score": 0.9, "box": TEXT_BOX}] if 5.0 <= t < 7.3 else []
    safety = []
    if 7.3 <= t < 9.5:
        safety.append({"category": "alcohol", "score": 0.71, "source": "prompt", "box": BOTTLE_BOX})
    if t >= 9.0:
        safety.append({"category": "violence", "score": 0.42, "source": "prompt"})
    concepts = [{"id": "210", "name": "Food & Drink", "score": 0.6}] if t >= 7.3 else []
    facts = {
        "media": "scene.mp4",
        "keyframe": "cut" if t in (2.5, 5.0, 7.3) else "interval",
        "faces": faces,
        "logos": logos,
        "safety": safety,
        "concepts": concepts,
        "text": text,
        "objects": [{"kind": "object", "label": "bus", "score": 0.66, "box": [0.0, 0.1, 0.9, 0.9]}]
        if t < 2.5
        else [],
    }
    alcohol = [_reason("exclusion", "category", "alcohol", 0.71, t, BOTTLE_BOX, "excluded")]
    violence = [_reason("exclusion", "category", "violence", 0.42, t, None, "excluded")]
    decisions = [
        _decision(
            "presenter",
            target=bool(faces),
            blocked_by=violence if t >= 9.0 else None,
            matched=[_reason("face", "label", "1 face", 0.81, t, FACE_BOX)] if faces else [],
        ),
        _decision(
            "acme-logo",
            target=bool(logos),
            matched=[_reason("logo", "brand", "acme", 0.93, t, LOGO_BOX)] if logos else [],
        ),
        _decision(
            "beer-brand",
            target=t >= 7.3,
            blocked_by=alcohol if 7.3 <= t < 9.5 else None,
        ),
        _decision("ghost", target=False, why_not="no 'ghost' logo on screen"),
    ]
    return {"media": "scene.mp4", "t": t, "facts": facts, "decisions": decisions}


def contract_lines(*, explain: bool = True) -> list[dict]:
    """The results, one dict per JSONL line, in the order a scan writes them."""
    lines: list[dict] = []
    lines.append({"media": "broken.mp4", "error": "broken.mp4: not a video, or a corrupt one"})
    lines += [
        _placement(
            "scene.mp4",
            "acme-logo",
            5.0,
            7.3,
            1,
            score=0.93,
            bid_cpm=3.0,
            advertiser="Acme Analytics",
            reasons=[
                _reason("logo", "brand", "acme", 0.93, 5.0, LOGO_BOX, "score >= 0.5"),
                _reason("logo", "brand", "acme", 0.9, 6.0, LOGO_BOX, "score >= 0.5"),
            ],
        ),
        _placement(
            "scene.mp4",
            "presenter",
            2.5,
            5.0,
            2,
            score=0.81,
            reasons=[_reason("face", "label", "1 face", 0.81, 3.0, FACE_BOX, "count >= 1")],
        ),
        _placement(
            "scene.mp4",
            "presenter",
            0.0,
            1.0,
            3,
            score=0.55,
            reasons=[_reason("face", "label", "1 face", 0.55, 0.5, [0.1, 0.2, 0.2, 0.4])],
        ),
        _placement(
            "scene.mp4",
            "beer-brand",
            9.5,
            10.0,
            4,
            score=0.6,
            bid_cpm=2.5,
            reasons=[_reason("iab", "iab", "Food & Drink (210)", 0.6, 9.5, None, "top 3")],
        ),
    ]
    if explain:
        for i, t in enumerate(SCENE_KEYFRAMES):
            lines.append(_scene_keyframe(t))
            if i == 3:
                lines.append({"media": "scene.mp4", "note": "a line from a newer scan"})
    lines.append(
        _placement(
            "pin.jpg",
            "presenter",
            0.0,
            0.0,
            1,
            reasons=[_reason("face", "label", "2 faces", 0.7, 0.0, [0.05, 0.4, 0.2, 0.6])],
        )
    )
    if explain:
        lines.append(
            {
                "media": "pin.jpg",
                "t": 0.0,
                "facts": {
                    "media": "pin.jpg",
                    "keyframe": "image",
                    "faces": [{"label": "face_male", "score": 0.7, "box": [0.05, 0.4, 0.2, 0.6]}],
                    "logos": [],
                    "safety": [],
                    "concepts": [],
                    "text": [],
                    "objects": [],
                },
                "decisions": [_decision("presenter", target=True)],
            }
        )
    lines.append(
        _placement(
            XSS_MEDIA,
            XSS_CAMPAIGN,
            1.0,
            3.0,
            1,
            reasons=[_reason("concept", "prompt", XSS_PROMPT, 0.3, 1.0, None, XSS_PROMPT)],
            advertiser=XSS_CAMPAIGN,
        )
    )
    if explain:
        lines.append(
            {
                "media": XSS_MEDIA,
                "t": 1.0,
                "facts": {
                    "media": XSS_MEDIA,
                    "keyframe": XSS_TEXT,
                    "faces": [],
                    "logos": [],
                    "safety": [],
                    "concepts": [{"id": XSS_TEXT, "name": XSS_TEXT, "score": 0.4}],
                    "text": [{"text": XSS_TEXT, "score": 0.9, "box": [0.1, 0.1, 0.5, 0.2]}],
                    "objects": [],
                },
                "decisions": [
                    _decision(XSS_CAMPAIGN, target=True),
                    _decision("ghost", target=False, why_not=XSS_WHY),
                ],
            }
        )
    return lines


def write_contract_results(path, *, explain: bool = True) -> list[dict]:
    """Write :func:`contract_lines` as JSONL at ``path``; returns the lines."""
    lines = contract_lines(explain=explain)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return lines
