"""Brand-safety false blocks on safe media, before and after ``targeting.safety_policy``.

    .venv/bin/python bench/bench_safety.py

Runs the real models once over ``bench/safety_set.py`` (NudeNet 320n at the pipeline's
defaults, the ``lite`` semantic model for prompt classes and the second opinion) and applies
both decision rules to the same raw scores: "before" is ``OLD_RULE`` (any detector flag at the
class threshold blocks, every face counts), "after" is ``DEFAULT_SAFETY_POLICY``. Every
keyframe of the set is safe, so every block is a false block. Prompt classes (violence,
weapons, ...) are decided by their thresholds under both rules. Faces: boxes at the default
face ``min_score`` (0.4) that count, on media with no person (false) and with people (kept).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from bench.safety_set import SafeItem, safety_set  # noqa: E402
from targeting.safety_policy import (  # noqa: E402
    DEFAULT_SAFETY_POLICY,
    OLD_RULE,
    SafetyPolicy,
    detector_verdicts,
    face_counts,
    second_opinion,
)
from vision.safety_classes import SAFETY_CLASSES  # noqa: E402
from vision.types import FrameFacts  # noqa: E402

FACE_MIN_SCORE = 0.4
"""The face clause's default ``min_score`` (``targeting.rules_schema.Face``)."""


def analyze_set() -> list[tuple[SafeItem, list[FrameFacts]]]:
    """The set's keyframes through the detector, lite and the safety scorer (CPU)."""
    from vision.analyze import Analyzer
    from vision.detectors import face_safety_detector
    from vision.lite import load_lite_model
    from vision.media import load_frames
    from vision.safety import SafetyScorer

    lite = load_lite_model("cpu")
    scorer = SafetyScorer.for_model(lite)
    analyzer = Analyzer(semantic=lite, detector=face_safety_detector(device="cpu"), safety=scorer)
    return [(it, list(analyzer.analyze(load_frames(it.path)))) for it in safety_set()]


def blocks(frames: list[FrameFacts], policy: SafetyPolicy) -> dict[str, int]:
    """Keyframes blocked per safety class (``<class> (<source>)``) and faces counted."""
    out: dict[str, int] = {}
    for c in SAFETY_CLASSES:
        key = f"{c.name} ({'detector' if c.source == 'detector' else 'prompt'})"
        if c.source == "detector":
            v = detector_verdicts(frames, c.name, c.threshold, policy)
            out[key] = sum(1 for x in v if x is not None and x.blocked)
        else:
            out[key] = sum(
                1
                for f in frames
                if any(fl.category == c.name and fl.score >= c.threshold for fl in f.safety)
            )
    any_block = 0
    for i, f in enumerate(frames):
        hit = any(
            fl.category == c.name and fl.score >= c.threshold
            for c in SAFETY_CLASSES
            if c.source == "clip"
            for fl in f.safety
        )
        v = detector_verdicts(frames, "nudity", SAFETY_CLASSES[0].threshold, policy)[i]
        any_block += hit or (v is not None and v.blocked)
    out["any class"] = any_block
    out["faces"] = sum(
        1
        for f in frames
        for d in f.detections
        if d.kind == "face"
        and d.score >= FACE_MIN_SCORE
        and face_counts(d, second_opinion(f), policy)
    )
    return out


def main() -> int:
    t0 = time.perf_counter()
    data = analyze_set()
    seconds = time.perf_counter() - t0
    rows = []
    for it, frames in data:
        before, after = blocks(frames, OLD_RULE), blocks(frames, DEFAULT_SAFETY_POLICY)
        rows.append((it, len(frames), before, after))
    classes = [k for k in rows[0][2] if k != "faces"]
    print(f"safe set: {len(rows)} media, {sum(r[1] for r in rows)} keyframes ({seconds:.0f} s)\n")
    groups = ("animation", "non-human", "people", "all")
    size = {g: sum(r[1] for r in rows if g in ("all", r[0].group)) for g in groups}
    print("false blocks, keyframes blocked before -> after (the same raw scores):\n")
    print("| class (source) | " + " | ".join(f"{g} ({size[g]})" for g in groups) + " |")
    print("|---|" + "---:|" * len(groups))
    for k in classes:
        cells = []
        for g in groups:
            sel = [r for r in rows if g in ("all", r[0].group)]
            bb, aa = sum(r[2][k] for r in sel), sum(r[3][k] for r in sel)
            cells.append(f"{bb} ({bb / size[g]:.1%}) -> {aa} ({aa / size[g]:.1%})")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("\nfaces counted at min_score 0.4, before / after:")
    for group in ("animation", "non-human", "people"):
        sel = [r for r in rows if r[0].group == group]
        b, a = sum(r[2]["faces"] for r in sel), sum(r[3]["faces"] for r in sel)
        print(f"  {group}: {b} / {a}")
    print("\nper media (nudity before/after, faces before/after):")
    for it, n, b, a in rows:
        nb, na = b["nudity (detector)"], a["nudity (detector)"]
        print(f"  {it.name}: {n} keyframes, nudity {nb}/{na}, faces {b['faces']}/{a['faces']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
