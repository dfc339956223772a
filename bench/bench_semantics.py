"""Semantic accuracy on real pictures: IAB tier-1 hit rates of ``lite`` beside random-weight
CLIP and the best constant guess, measured in one run, plus OCR word accuracy.

    .venv/bin/python bench/bench_semantics.py [--skip-ocr]

The labelled set is ``bench/semantic_set.py`` (21 pictures from installed packages: photos,
microscopy, astronomy, text, a present, three video frames). A hit at top-1: the tier-1
category of the best-ranked IAB category is one a person accepted; at top-3: any of the
first three distinct tier-1 categories is. OCR word accuracy comes from bench/bench_ocr.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from bench.semantic_set import SET, best_constant, chance, load, score, tier1_ranking  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-ocr", action="store_true", help="leave out the OCR word accuracy")
    args = ap.parse_args()
    from vision.semantic import load_semantic_model

    images = [load(it) for it in SET]
    rows = []
    for label, choice in (("lite", "lite"), ("clip random weights", "random")):
        model = load_semantic_model(choice, device="cpu")  # type: ignore[arg-type]
        t0 = time.perf_counter()
        ranked = tier1_ranking(model, images)
        rows.append((label, score(ranked), time.perf_counter() - t0))
    c1, c3, first, triple = best_constant()
    print(f"IAB tier-1 hit rate on {len(SET)} real pictures (bench/semantic_set.py)")
    print("command: .venv/bin/python bench/bench_semantics.py")
    print(f"{'model':28}{'top-1':>8}{'top-3':>8}{'seconds':>9}")
    for label, s, secs in rows:
        print(f"{label:28}{s.top1:8.2f}{s.top3:8.2f}{secs:9.1f}")
    r1, r3 = chance()
    print(f"{'chance (a random guess)':28}{r1:8.2f}{r3:8.2f}")
    print(f"{'best constant guess':28}{c1:8.2f}{c3:8.2f}{'':>9}   ({first}; {', '.join(triple)})")
    lite = rows[0][1]
    print("\nlite, per picture (first three tier-1 categories; * = accepted):")
    for (name, got), it in zip(lite.hits, SET, strict=True):
        marked = ", ".join(f"{t}{'*' if t in it.accept else ''}" for t in got)
        print(f"  {name:14}{marked}")
    if not args.skip_ocr:
        print()
        bench_ocr = Path(__file__).with_name("bench_ocr.py")
        subprocess.run([sys.executable, str(bench_ocr)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
