"""The pipelined batch scan: several decoders, batches across media, writes in plan order.

Real media (a short video cut from real photos with the acme logo pasted on, a broken copy,
real photos as still images, a missing file) and real models (the face/safety detector and
the logo matcher); the reference is the one-media-at-a-time path (``scan_media``), which the
pipelined scan must reproduce line for line, in the same order.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from serving.batch.outputs import result_lines
from serving.batch.progress import ScanProgress, StageTimes
from serving.batch.scan import BatchSummary, MediaResult, media_id_for, run_scan, scan_media
from serving.commands.scan import summary_lines
from serving.targeter import Targeter
from targeting.types import Placement, Reason

TODAY = date(2026, 12, 3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, real_images) -> tuple[Targeter, list[Path]]:
    from examples.build_media import OVERLAYS, RULES, SCENES, build_video
    from targeting.rules_loader import load_rules
    from vision.pipeline import PipelineConfig, build_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    rules = root / "rules"
    (rules / "campaigns").mkdir(parents=True)
    (rules / "campaigns" / "acme.yaml").write_text(
        "id: acme\nbid_cpm: 3\ntarget:\n  any:\n    - logo: {brand: acme}\n"
    )
    (rules / "campaigns" / "faces.yaml").write_text(
        "id: faces\ntarget:\n  all:\n    - face: {min_count: 1, min_area: 0.02}\n"
    )
    shutil.copytree(RULES / "brands" / "acme", rules / "brands" / "acme")
    media = root / "media"
    media.mkdir()
    short = tuple(s for s in SCENES if s.end_s <= 9.0)  # two photos, a cut at 4 s
    acme = tuple(o for o in OVERLAYS if o.brand == "acme")
    build_video(media / "clip.mp4", short, acme, banners=(), rules=RULES)
    (media / "broken.mp4").write_bytes((media / "clip.mp4").read_bytes()[:3_000])
    paths = [media / "clip.mp4", media / "broken.mp4"]
    for name in ("zidane", "bus", "astronaut", "coffee", "chelsea"):
        p = media / f"{name}{real_images[name].suffix}"
        shutil.copy(real_images[name], p)
        paths.append(p)
    paths.append(media / "missing.jpg")
    pipeline = build_pipeline(PipelineConfig(brands_dir=rules / "brands", semantic="off"))
    return Targeter(pipeline, load_rules(rules)), paths


def reference_lines(targeter: Targeter, paths: list[Path], *, explain: bool) -> list[str]:
    out: list[str] = []
    for p in paths:
        result = scan_media(targeter, p, media_id_for(p), today=TODAY, explain=explain)
        out += result_lines(result, explain=explain)
    return out


@pytest.mark.parametrize("workers", [1, 3])
def test_pipelined_scan_writes_what_one_media_at_a_time_writes(setup, tmp_path, workers) -> None:
    targeter, paths = setup
    expected = reference_lines(targeter, paths, explain=True)
    out = tmp_path / "p.jsonl"
    summary = run_scan(
        targeter, paths, out=out, today=TODAY, explain=True, progress=False, decode_workers=workers
    )
    assert out.read_text().splitlines() == expected  # same lines, same (plan) order
    assert [r.media for r in summary.results] == [p.name for p in paths]
    assert [r.ok for r in summary.results] == [True, False] + [True] * 5 + [False]
    assert "missing.jpg: no such file" in (summary.results[-1].error or "")
    clip = summary.results[0]
    assert clip.duration_s == pytest.approx(9.0, abs=0.2) and clip.keyframes >= 18
    assert any(p.campaign == "acme" for p in clip.placements)
    t = summary.times
    assert t.keyframes == sum(r.keyframes for r in summary.results if r.ok)
    assert t.video_s == pytest.approx(9.0, abs=0.2) and t.wall_s > 0 and t.models_s > 0


class Slow:
    """The targeter's models, slowed and recorded: the decoders run ahead while a batch works."""

    def __init__(self, models, fail_on: str | None = None) -> None:
        self.models, self.fail_on = models, fail_on
        self.batches: list[list[str]] = []
        self.batch_size = 4
        self.lock = threading.Lock()

    def analyze_batch(self, frames, memory=None):
        with self.lock:
            self.batches.append([f.media_id for f in frames])
        time.sleep(0.3)
        if self.fail_on is not None and any(f.media_id == self.fail_on for f in frames):
            raise RuntimeError("model fell over")
        return self.models.analyze_batch(frames, memory)


def test_batches_are_formed_across_media_and_never_exceed_the_batch_size(
    setup, tmp_path, monkeypatch
) -> None:
    targeter, paths = setup
    stills = paths[2:7]
    slow = Slow(targeter.models)
    monkeypatch.setattr(targeter, "models", slow)
    summary = run_scan(
        targeter, stills, out=tmp_path / "p.jsonl", today=TODAY, progress=False, decode_workers=2
    )
    assert summary.ok == 5
    assert max(map(len, slow.batches)) <= 4
    assert any(len(set(b)) > 1 for b in slow.batches), slow.batches  # one call, several media
    assert summary.times.batches == len(slow.batches) < 5
    assert summary.times.mean_batch > 1


def test_a_model_failure_fails_only_the_media_it_fails_on(setup, tmp_path, monkeypatch) -> None:
    targeter, paths = setup
    stills = paths[2:7]
    expected = reference_lines(targeter, stills, explain=False)
    monkeypatch.setattr(targeter, "models", Slow(targeter.models, fail_on="bus.jpg"))
    out = tmp_path / "p.jsonl"
    summary = run_scan(targeter, stills, out=out, today=TODAY, progress=False, decode_workers=2)
    assert [r.ok for r in summary.results] == [True, False, True, True, True]
    assert summary.results[1].error == (
        f"{stills[1]}: internal error RuntimeError: model fell over"
    )
    others = [line for line in expected if '"bus.jpg"' not in line]
    assert [line for line in out.read_text().splitlines() if '"bus.jpg"' not in line] == others


class FailingStore:
    """A placement store whose second write fails (a full disk, a lock held too long)."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def replace_media(self, media: str, placements) -> None:
        if self.written:
            from serving.placement_store import PlacementStoreError

            raise PlacementStoreError("the disk holding the store is full")
        self.written.append(media)


def test_a_failed_write_stops_the_scan_and_checkpoints_nothing_after_it(setup, tmp_path) -> None:
    from serving.batch.checkpoint import JsonlSink
    from serving.placement_store import PlacementStoreError

    targeter, paths = setup
    stills = paths[2:7]
    out = tmp_path / "p.jsonl"
    with pytest.raises(PlacementStoreError, match="disk holding the store is full"):
        run_scan(
            targeter, stills, out=out, today=TODAY, progress=False, store=FailingStore(),
            decode_workers=2,
        )  # fmt: skip
    sink = JsonlSink(out, resume=True)
    sink.close()
    assert sink.done == {stills[0].name}  # the media after it is redone by --resume


def test_progress_lines_when_not_a_terminal_and_the_final_summary(tmp_path) -> None:
    stream = io.StringIO()
    bar = ScanProgress(2, stream=stream, log_every_s=0.0)
    bar.add_keyframes(10)
    bar.media_done(30.0)
    bar.write("done a.mp4: 2 placements")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("progress: 0/2 media, 10 keyframes, ")
    assert lines[1].startswith("progress: 1/2 media, 10 keyframes, ") and "x realtime" in lines[1]
    assert "ETA" in lines[1] and "\r" not in stream.getvalue()
    assert lines[2] == "done a.mp4: 2 placements"
    assert ScanProgress(2, stream=io.StringIO(), enabled=False)._plain is False

    def placement(campaign: str) -> Placement:
        return Placement(campaign, "a.mp4", 0.0, 1.0, 0.5, (Reason("logo", "acme", 0.9, 0.0),))

    summary = BatchSummary(
        (
            MediaResult("a.mp4", Path("a.mp4"), placements=(placement("x"), placement("x"))),
            MediaResult("b.mp4", Path("b.mp4"), placements=(placement("y"),)),
            MediaResult("c.mp4", Path("c.mp4"), error="c.mp4: broken"),
        ),
        ("d.mp4",),
        StageTimes(
            decode_s=2.0, models_s=50.0, matching_s=0.5, writing_s=0.1, wall_s=60.0,
            video_s=120.0, keyframes=240, batches=16,
        ),
    )  # fmt: skip
    assert summary_lines(summary, tmp_path / "p.jsonl") == [
        f"scanned 2 media (1 failed, 1 already done): 3 placements -> {tmp_path / 'p.jsonl'}",
        "placements per campaign: x 2, y 1",
        "time 1:00, 120 s of video (2.0x realtime), 240 keyframes in 16 model calls (mean batch "
        "15.0); decode 2.0 s, models 50.0 s, matching 0.5 s, writing 0.1 s (overlapping)",
    ]
