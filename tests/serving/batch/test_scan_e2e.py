"""``onscreen scan`` end to end: real photos, a real logo pasted at known times, real models.

The video (20 s, 10 fps) is cut from five photos; the acme logo is on screen from 6.0 s to
12.0 s (across the cut at 9.0 s). Rules: acme's logo, a brand that never appears (ghost), a
presenter face campaign. No CLIP is needed by these rules, so none is loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serving.commands.cli import main

STEP = 0.5  # keyframe interval (s)

CAMPAIGNS = {
    "acme-logo.yaml": "id: acme-logo\nbid_cpm: 3\ntarget:\n  any:\n    - logo: {brand: acme}\n",
    "ghost-logo.yaml": "id: ghost-logo\nbid_cpm: 9\ntarget:\n  any:\n    - logo: {brand: ghost}\n",
    "presenter.yaml": (
        "id: presenter\ntarget:\n  all:\n    - face: {min_count: 1, min_area: 0.05}\nmin_duration_s: 2\n"
    ),
}


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path, dict]:
    from examples.build_media import OVERLAYS, RULES, build_video

    root = tmp_path_factory.mktemp("scan")
    rules = root / "rules"
    (rules / "campaigns").mkdir(parents=True)
    for name, text in CAMPAIGNS.items():
        (rules / "campaigns" / name).write_text(text)
    shutil.copytree(RULES / "brands" / "acme", rules / "brands" / "acme")
    # ghost's logo is the rival logo, which this video never shows
    shutil.copytree(RULES / "brands" / "rival", rules / "brands" / "ghost")
    media = root / "media"
    media.mkdir()
    acme_only = tuple(o for o in OVERLAYS if o.brand == "acme")
    truth = build_video(media / "demo.mp4", overlays=acme_only, rules=RULES)
    (media / "broken.mp4").write_bytes((media / "demo.mp4").read_bytes()[:20_000])
    return rules, media, truth


def _scan(rules: Path, media: list[Path], out: Path, *extra: str) -> tuple[int, list[dict]]:
    code = main(
        ["scan", *map(str, media), "--rules", str(rules), "--out", str(out), "--quiet", *extra]
    )
    return code, [json.loads(line) for line in out.read_text().splitlines()]


def test_logo_face_and_absent_brand_with_a_broken_file_beside(scene, tmp_path) -> None:
    rules, media, truth = scene
    code, lines = _scan(rules, [media / "broken.mp4", media / "demo.mp4"], tmp_path / "p.jsonl")
    assert code == 0
    errors = [x for x in lines if "error" in x]
    assert [e["media"] for e in errors] == ["broken.mp4"]
    assert "broken.mp4" in errors[0]["error"]
    placements = [x for x in lines if "campaign" in x]
    assert all(p["media"] == "demo.mp4" for p in placements)
    acme = [p for p in placements if p["campaign"] == "acme-logo"]
    assert len(acme) == 1, acme
    (p,) = acme
    assert abs(p["start_s"] - 6.0) <= STEP and abs(p["end_s"] - 12.0) <= STEP
    assert p["reasons"] and all(r["kind"] == "logo" and r["brand"] == "acme" for r in p["reasons"])
    x0, y0, x1, y1 = p["reasons"][0]["box"]
    tx0, ty0, tx1, ty1 = next(o["box"] for o in truth["logos"] if o["brand"] == "acme")
    inter = max(0, min(x1, tx1) - max(x0, tx0)) * max(0, min(y1, ty1) - max(y0, ty0))
    union = (x1 - x0) * (y1 - y0) + (tx1 - tx0) * (ty1 - ty0) - inter
    assert inter / union > 0.6
    assert not [p for p in placements if p["campaign"] == "ghost-logo"]
    faces = [p for p in placements if p["campaign"] == "presenter"]
    # grace hopper fills the first scene (0-4 s) with one large face
    assert any(p["start_s"] <= STEP and p["end_s"] >= 4.0 - STEP for p in faces), faces
    for p in faces:
        assert all(r["kind"] == "face" and len(r["box"]) == 4 for r in p["reasons"])


def test_scan_with_no_readable_media_exits_1(scene, tmp_path) -> None:
    rules, media, _ = scene
    code, lines = _scan(
        rules, [media / "broken.mp4", tmp_path / "missing.mp4"], tmp_path / "e.jsonl"
    )
    assert code == 1
    assert [set(x) for x in lines] == [{"media", "error"}, {"media", "error"}]
    assert "no such file" in lines[1]["error"]


def test_resume_skips_done_media_and_drops_a_torn_tail(scene, tmp_path) -> None:
    rules, media, _ = scene
    out = tmp_path / "r.jsonl"
    pin = tmp_path / "pin.jpg"
    shutil.copy(next(Path(__import__("ultralytics").__file__).parent.glob("assets/bus.jpg")), pin)
    code, first = _scan(rules, [pin], out)
    assert code == 0
    with open(out, "a") as f:  # a crash in the middle of writing the next media's lines
        f.write('{"media": "demo.mp4", "campaign": "acme-lo')
    code, lines = _scan(rules, [pin, media / "broken.mp4"], out, "--resume")
    assert code == 0
    assert lines[: len(first)] == first
    assert lines[len(first) :] == [lines[-1]] and lines[-1]["media"] == "broken.mp4"


def test_explain_adds_per_keyframe_facts_and_decisions(scene, tmp_path) -> None:
    rules, media, _ = scene
    code, lines = _scan(rules, [media / "demo.mp4"], tmp_path / "x.jsonl", "--explain")
    assert code == 0
    frames = [x for x in lines if "facts" in x]
    assert len(frames) >= 40  # 20 s at 0.5 s, plus cuts
    at7 = next(f for f in frames if f["t"] == 7.0)
    assert any(m["brand"] == "acme" for m in at7["facts"]["logos"])
    d = {x["campaign"]: x for x in at7["decisions"]}
    assert d["acme-logo"]["placed"] and d["acme-logo"]["matched"][0]["brand"] == "acme"
    assert not d["ghost-logo"]["placed"]


def test_store_and_parquet_hold_the_same_placements_as_jsonl(scene, tmp_path) -> None:
    import pyarrow.parquet as pq

    from serving.placement_store import PlacementStore

    rules, media, _ = scene
    store, parquet = tmp_path / "p.sqlite", tmp_path / "p.parquet"
    code, lines = _scan(
        rules,
        [media / "demo.mp4"],
        tmp_path / "s.jsonl",
        "--store",
        str(store),
        "--parquet",
        str(parquet),
    )
    assert code == 0
    placements = [x for x in lines if "campaign" in x]
    table = pq.read_table(parquet).to_pylist()
    assert [(r["campaign"], r["start_s"]) for r in table] == [
        (p["campaign"], p["start_s"]) for p in placements
    ]
    with PlacementStore(store) as s:
        assert len(s.lookup("demo.mp4")) == len(placements)
        at7 = s.lookup("demo.mp4", 7.0)
        assert "acme-logo" in {p.campaign for p in at7}
        assert s.lookup("never-scanned.mp4") is None


def test_scan_media_reports_each_keyframe_for_progress(scene) -> None:
    from datetime import date

    from serving.batch.scan import scan_media
    from serving.targeter import Targeter
    from targeting.rules_loader import load_rules
    from vision.pipeline import PipelineConfig, build_pipeline

    rules, media, _ = scene
    pipeline = build_pipeline(PipelineConfig(brands_dir=rules / "brands", semantic="off"))
    seen: list[float] = []
    result = scan_media(
        Targeter(pipeline, load_rules(rules)),
        media / "demo.mp4",
        "demo.mp4",
        today=date.today(),
        on_frame=lambda f: seen.append(f.t),
    )
    assert result.ok and len(seen) == result.keyframes
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] >= 19.0
