"""Benchmark: ConceptIndex.build and matching for 100 / 1,000 / 10,000 campaigns, side by side.

Run from the repository root:

    .venv/bin/python bench/bench_match.py            # N = 100, 1000, 10000
    .venv/bin/python bench/bench_match.py --n 100 1000 --keyframes 240 --repeat 5

Four timings per N, interleaved in every repeat so they share the machine's load: ``table``
(``match_table``: the columnar result, no ``Placement`` object), ``objects`` (``match``: the
table plus every Placement), ``jsonl`` (the table's ``json_lines``, what a scan writes) and
``jsonl/obj`` (the same lines from the objects, ``json.dumps(p.to_json())`` each, the way
writers did before the table). Copied into an older checkout that has no ``match_table``, it
times ``objects`` and ``jsonl/obj`` only (``-`` elsewhere): run both alternately to compare.

What is measured: matching one 120-keyframe timeline (a 60 s video sampled every 0.5 s) with
real-shaped CLIP embeddings (D = 512, unit vectors) against N synthetic campaigns mixing prompt,
logo, face and IAB clauses plus exclusions. The embedder is a fake (hash-seeded random vectors),
so the build time is the compile + stacking cost, *not* the text tower's (that is the CLIP
benchmark's job). Scenes are built so that many campaigns match (about two placements per
campaign, the table shows how many came out): a heavy case, since building placements and
their reasons is the part that grows with the number of matches rather than with N x frames.

Each timed run starts after ``gc.collect()``. Without it, a full collection of the whole heap
(10,000 campaigns are ~250,000 objects; ~150-200 ms on a 2-core machine) falls into every
second run, triggered by the garbage of the runs before: a cost of the process (a server
holding its rules can ``gc.freeze()`` them after loading), not of ``match``. The young-generation
collections that match's own allocations trigger stay inside the timing.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence, Sized
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from targeting.concept_index import ConceptIndex  # noqa: E402
from targeting.match import match  # noqa: E402

try:
    from targeting.match import match_table
except ImportError:  # an older checkout (see the module doc)
    match_table = None  # type: ignore[assignment]
from targeting.rules_schema import Campaign  # noqa: E402
from vision.semantic import CLIP_SCALE  # noqa: E402
from vision.taxonomy import iab_categories  # noqa: E402
from vision.types import Detection, FrameFacts, LogoMatch, SafetyFlag  # noqa: E402

DIM = 512
TODAY = date(2026, 12, 1)
N_BRANDS = 200
SCENE_FRAMES = 10
STEP_S = 0.5


def unit(text: str, dim: int = DIM) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class RandomEmbedder:
    """A ``SemanticModel`` returning hash-seeded unit vectors (no model, deterministic)."""

    dim = DIM
    model_id = "bench-random-512"
    score_scale = CLIP_SCALE  # the generated thresholds are on CLIP's scale

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([unit("t:" + t) for t in texts])

    def embed_image_files(self, paths: Sequence[Path]) -> np.ndarray:
        return np.stack([unit("i:" + str(p)) for p in paths])


def campaigns(n: int, rng: np.random.Generator, iab_ids: Sequence[str]) -> list[Campaign]:
    """N campaigns; about n/2 distinct prompts, 200 brands, a few face settings, IAB ids."""
    n_prompts = max(20, n // 2)
    out = []
    for i in range(n):
        clauses: list[dict[str, object]] = []
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.choice(["concept", "logo", "face", "iab"], p=[0.45, 0.25, 0.15, 0.15])
            if kind == "concept":
                th = float(rng.choice([0.25, 0.3]))
                clauses.append(
                    {"concept": {"prompt": f"prompt {rng.integers(n_prompts)}", "threshold": th}}
                )
            elif kind == "logo":
                clauses.append(
                    {
                        "logo": {
                            "brand": f"brand{rng.integers(N_BRANDS)}",
                            "min_score": float(rng.choice([0.5, 0.7])),
                        }
                    }
                )
            elif kind == "face":
                clauses.append(
                    {
                        "face": {
                            "min_count": int(rng.integers(1, 3)),
                            "min_area": float(rng.choice([0.0, 0.02])),
                        }
                    }
                )
            else:
                clauses.append(
                    {"iab": {"ids": [str(rng.choice(iab_ids))], "top_k": int(rng.choice([3, 5]))}}
                )
        target = (
            {"all": clauses[:1], "any": clauses[1:]}
            if rng.random() < 0.3 and len(clauses) > 1
            else {"any": clauses}
        )
        exclude: dict[str, object] = {}
        if rng.random() < 0.5:
            exclude["safety"] = ["nudity", "violence"]
        if rng.random() < 0.2:
            exclude["concepts"] = [{"prompt": f"prompt {rng.integers(n_prompts)}"}]
        out.append(
            Campaign.model_validate(
                {
                    "id": f"c{i:05d}",
                    "bid_cpm": float(rng.uniform(0.5, 5)),
                    "target": target,
                    "exclude": exclude,
                }
            )
        )
    return out


def timeline(
    n_frames: int, n_prompts: int, iab: np.ndarray, rng: np.random.Generator
) -> list[FrameFacts]:
    """Scenes of 10 keyframes, each near two prompts and one IAB category, with logos and faces."""
    frames = []
    for s in range(0, n_frames, SCENE_FRAMES):
        p1, p2 = rng.integers(n_prompts, size=2)
        cat = iab[rng.integers(len(iab))]
        base = 0.45 * unit(f"t:prompt {p1}") + 0.35 * unit(f"t:prompt {p2}") + 0.5 * cat
        brand = f"brand{rng.integers(N_BRANDS)}"
        for i in range(s, min(s + SCENE_FRAMES, n_frames)):
            v = base + 0.25 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM) * 4
            v /= np.linalg.norm(v)
            faces = tuple(
                Detection(
                    "face", "FACE_FEMALE", float(rng.uniform(0.3, 0.95)), (0.1, 0.1, 0.3, 0.35)
                )
                for _ in range(int(rng.integers(0, 3)))
            )
            logos = (
                (LogoMatch(brand, float(rng.uniform(0.4, 0.95)), (0.6, 0.6, 0.8, 0.7)),)
                if rng.random() < 0.6
                else ()
            )
            safety = (
                (SafetyFlag("nudity", 0.9, "detector", (0.2, 0.2, 0.5, 0.6)),)
                if rng.random() < 0.02
                else ()
            )
            frames.append(
                FrameFacts("bench-video", i * STEP_S, v.astype(np.float32), faces, logos, safety)
            )
    return frames


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000], help="campaign counts")
    ap.add_argument("--keyframes", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each timing per N (medians)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    cats = iab_categories()
    iab_ids = tuple(c.id for c in cats)
    iab_matrix = np.stack([unit("iab:" + i) for i in iab_ids])
    emb = RandomEmbedder()
    print(
        f"match bench: {args.keyframes} keyframes x N campaigns, D={DIM}, CPU, numpy {np.__version__}"
    )
    print(
        f"command: .venv/bin/python bench/bench_match.py --n {' '.join(map(str, args.n))} "
        f"--keyframes {args.keyframes} --repeat {args.repeat}"
    )
    header = (
        f"{'N':>7} {'K concepts':>10} {'signals':>8} {'build ms':>9} {'table ms':>9} "
        f"{'objects ms':>10} {'jsonl ms':>9} {'jsonl/obj ms':>12} {'placements':>10}"
    )
    print(header)
    print("-" * len(header))
    for n in args.n:
        cs = campaigns(n, rng, iab_ids)
        tl = timeline(args.keyframes, max(20, n // 2), iab_matrix, rng)
        t0 = time.perf_counter()
        idx = ConceptIndex.build(cs, emb, rules_root=ROOT, iab_matrix=iab_matrix, iab_ids=iab_ids)
        build_ms = (time.perf_counter() - t0) * 1e3
        times, placements = timings(tl, cs, idx, args.repeat)
        cols = [median_ms(times, k, w) for k, w in TIMING_WIDTHS.items()]
        print(
            f"{n:>7} {len(idx.columns):>10} {idx.n_signals:>8} {build_ms:>9.1f} {' '.join(cols)} "
            f"{placements:>10}"
        )


TIMING_WIDTHS = {"table": 9, "objects": 10, "jsonl": 9, "jsonl/obj": 12}
"""The timings, in column order, and their column widths."""


def median_ms(times: dict[str, list[float]], name: str, width: int) -> str:
    got = times.get(name)
    return f"{statistics.median(got):>{width}.1f}" if got else "-".rjust(width)


def timings(
    tl: list[FrameFacts], cs: list[Campaign], idx: ConceptIndex, repeat: int
) -> tuple[dict[str, list[float]], int]:
    """ms of each timing (module doc) per repeat, interleaved; and the number of placements."""
    runs: dict[str, Callable[[], Sized]] = {
        "objects": lambda: match(tl, cs, idx, today=TODAY),
        "jsonl/obj": lambda: [json.dumps(p.to_json()) for p in match(tl, cs, idx, today=TODAY)],
    }
    if match_table is not None:
        runs["table"] = lambda: match_table(tl, cs, idx, today=TODAY)
        runs["jsonl"] = lambda: match_table(tl, cs, idx, today=TODAY).json_lines()
    times: dict[str, list[float]] = {k: [] for k in runs}
    sizes = set()
    for _ in range(repeat):
        for name, run in runs.items():
            gc.collect()  # the previous run's garbage is collected here: see the module doc
            t0 = time.perf_counter()
            out = run()
            times[name].append((time.perf_counter() - t0) * 1e3)
            sizes.add(len(out))
            del out
    assert len(sizes) == 1, f"the runs disagree on the number of placements: {sizes}"
    return times, sizes.pop()


if __name__ == "__main__":
    main()
