"""A real ``onscreen scan`` killed with SIGKILL at several points, then rerun with ``--resume``:
JSONL, Parquet and the placement store hold exactly what an uninterrupted scan writes (no
missing and no duplicate row), whatever the point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from serving.placement_store import PlacementStore
from tests.serving.commands.test_scan import face_rules

PHOTOS = ("zidane", "bus", "astronaut", "coffee", "grace_hopper")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]) -> Path:
    from tests.conftest import read_rgb
    from vision.video_write import write_video

    root = tmp_path_factory.mktemp("media")
    for name in PHOTOS:
        if name not in real_images:
            continue
        frame = cv2.resize(read_rgb(real_images[name]), (320, 180), interpolation=cv2.INTER_AREA)
        write_video(root / f"{name}.mp4", [frame] * 10, fps=5.0)
    (root / "junk.mp4").write_bytes(b"\x00" * 500)  # an error line must be exactly-once too
    return root


def _argv(media: Path, rules: Path, out: Path) -> list[str]:
    code = "import sys; from serving.commands.cli import main; sys.exit(main())"
    return [
        sys.executable, "-c", code, "scan", str(media), "--rules", str(rules),
        "--out", str(out / "o.jsonl"), "--parquet", str(out / "p.parquet"),
        "--store", str(out / "s.sqlite"), "--semantic", "off", "--quiet",
    ]  # fmt: skip


def _run(argv: list[str], *, kill_after_done: int | None = None, delay: float = 0.0) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    if kill_after_done is None:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return
    done = 0
    for line in proc.stderr:
        done += line.startswith("done ")
        if done == kill_after_done:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the scan ended before it could be killed"


def _outputs(out: Path) -> tuple[list[str], list[str], dict]:
    import pyarrow.parquet as pq

    lines = sorted((out / "o.jsonl").read_text().splitlines())
    rows = sorted(
        json.dumps(r, sort_keys=True) for r in pq.read_table(out / "p.parquet").to_pylist()
    )
    with PlacementStore(out / "s.sqlite") as s:
        stored = {m: [p.to_json() for p in s.lookup(m) or []] for m in s.media_ids()}
    return lines, rows, stored


@pytest.mark.slow
def test_a_scan_killed_anywhere_resumes_to_exactly_the_uninterrupted_outputs(
    tmp_path: Path, media: Path
) -> None:
    rules = face_rules(tmp_path / "rules")
    clean = tmp_path / "clean"
    _run(_argv(media, rules, clean))
    expected = _outputs(clean)
    n_media = len(list(media.iterdir()))
    assert len(expected[2]) == n_media - 1  # every video stored; junk.mp4 is an error line
    assert len(expected[1]) >= 2 and any('"error"' in x for x in expected[0])
    for after, delay in ((1, 0.0), (2, 0.0), (3, 0.0), (1, 0.3), (4, 0.05)):
        out = tmp_path / f"killed-{after}-{delay}"
        _run(_argv(media, rules, out), kill_after_done=after, delay=delay)
        _run([*_argv(media, rules, out), "--resume"])
        assert _outputs(out) == expected, (after, delay)
