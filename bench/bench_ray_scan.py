"""Ray overhead: the same ``onscreen scan`` with and without ``--ray`` (a local Ray instance on
this machine), side by side in one run, and a check that both wrote the same lines.

    python -m bench.bench_ray_scan [--videos 3] [--repeat 1]

Media: the example video (20 s, 10 fps, a logo from 6 to 12 s) under ``--videos`` names, plus
the example pin image; rules: the acme logo and a presenter face campaign (no semantic model,
no OCR), so the time is decode, the face detector and logo matching. Each run is the whole
command as a user runs it: models loaded (by the scan, or by the Ray actor), every media
scanned and written; the Ray run also starts and stops its Ray instance.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

from serving.commands.cli import main as cli

CAMPAIGNS = {
    "acme-logo.yaml": "id: acme-logo\nbid_cpm: 3\ntarget:\n  any:\n    - logo: {brand: acme}\n",
    "presenter.yaml": (
        "id: presenter\ntarget:\n  all:\n    - face: {min_count: 1, min_area: 0.05}\nmin_duration_s: 2\n"
    ),
}


def _scene(root: Path, videos: int) -> tuple[Path, list[Path]]:
    from examples.build_media import RULES, build_pin, build_video

    rules = root / "rules"
    (rules / "campaigns").mkdir(parents=True)
    for name, text in CAMPAIGNS.items():
        (rules / "campaigns" / name).write_text(text)
    shutil.copytree(RULES / "brands" / "acme", rules / "brands" / "acme")
    media = root / "media"
    media.mkdir()
    build_video(media / "video-0.mp4")
    for i in range(1, videos):
        shutil.copy(media / "video-0.mp4", media / f"video-{i}.mp4")
    build_pin(media / "pin.jpg")
    return rules, sorted(media.iterdir())


def _run(rules: Path, media: list[Path], out: Path, *extra: str) -> float:
    args = ["scan", *map(str, media), "--rules", str(rules), "--out", str(out), "--quiet"]
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = cli([*args, *extra])
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"scan {' '.join(extra)} exited {code}:\n{err.getvalue()[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=3, help="copies of the 20 s example video")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rules, media = _scene(root, args.videos)
        plain = ray = 0.0
        for i in range(args.repeat):  # interleaved, so both see the same machine load
            plain += _run(rules, media, root / f"plain-{i}.jsonl")
            ray += _run(rules, media, root / f"ray-{i}.jsonl", "--ray")
            same = sorted((root / f"plain-{i}.jsonl").read_bytes().splitlines()) == sorted(
                (root / f"ray-{i}.jsonl").read_bytes().splitlines()
            )
            if not same:
                raise SystemExit("the Ray scan wrote other lines than the plain scan")
        plain, ray = plain / args.repeat, ray / args.repeat
        print(f"media: {len(media)} ({args.videos} x 20 s video + 1 image), repeat {args.repeat}")
        print("| run | wall s | ratio |")
        print("|---|---|---|")
        print(f"| onscreen scan | {plain:.1f} | 1.00 |")
        print(f"| onscreen scan --ray (local) | {ray:.1f} | {ray / plain:.2f} |")
        print(f"Ray overhead: {ray - plain:+.1f} s; outputs identical after sorting")


if __name__ == "__main__":
    main()
