"""``onscreen scan --ray``: the same lines and store rows as the local scan, on a local Ray.

The Ray scan runs as a subprocess (the real CLI: its own Ray instance, started and shut down by
the scan, on this machine's CPUs). One Ray run covers the whole contract, since each costs Ray's
start and a model load: it resumes a scan the local run began (one image done), then scans a
video with a logo, a second image and a truncated file, with ``--explain`` (the facts cross
the wire too) and a store. Its sorted lines must be the local full scan's, byte for byte.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving.commands.cli import main
from tests.serving.batch.test_scan_e2e import CAMPAIGNS

ROOT = Path(__file__).resolve().parents[3]
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="ray is not installed: pip install 'onscreen[ray]' (CI installs it with .[dev])",
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Rules (acme's logo, a face campaign) and four media: a 13 s video with acme's logo from
    6 to 12 s, two photos, a truncated copy of the video."""
    from examples.build_media import OVERLAYS, PHOTOS, RULES, SCENES, build_video, package_image

    root = tmp_path_factory.mktemp("ray-scan")
    rules = root / "rules"
    (rules / "campaigns").mkdir(parents=True)
    for name, text in CAMPAIGNS.items():
        (rules / "campaigns" / name).write_text(text)
    shutil.copytree(RULES / "brands" / "acme", rules / "brands" / "acme")
    shutil.copytree(RULES / "brands" / "rival", rules / "brands" / "ghost")
    media = root / "media"
    media.mkdir()
    acme = tuple(o for o in OVERLAYS if o.brand == "acme" and o.end_s <= 13.0)
    build_video(media / "demo.mp4", SCENES[:3], acme, banners=(), rules=RULES)
    (media / "broken.mp4").write_bytes((media / "demo.mp4").read_bytes()[:20_000])
    shutil.copy(package_image(*PHOTOS["bus"]), media / "bus.jpg")
    shutil.copy(package_image(*PHOTOS["zidane"]), media / "zidane.jpg")
    files = [media / n for n in ("bus.jpg", "demo.mp4", "broken.mp4", "zidane.jpg")]
    return rules, files


def _args(rules: Path, media: list[Path], out: Path, *extra: str) -> list[str]:
    return ["scan", *map(str, media), "--rules", str(rules), "--out", str(out), "--quiet", *extra]


def _store_rows(path: Path, media: list[str]) -> dict[str, object]:
    from serving.placement_store import PlacementStore

    with PlacementStore(path) as store:
        return {m: store.lookup(m) for m in media}


@needs_ray
@pytest.mark.slow
def test_ray_scan_resumes_and_writes_what_the_local_scan_writes(scene, tmp_path) -> None:
    rules, files = scene
    local, local_db = tmp_path / "local.jsonl", tmp_path / "local.sqlite"
    assert main(_args(rules, files, local, "--explain", "--store", str(local_db))) == 0
    out, db = tmp_path / "ray.jsonl", tmp_path / "ray.sqlite"
    assert main(_args(rules, files[:1], out, "--explain", "--store", str(db))) == 0

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    args = _args(rules, files, out, "--explain", "--store", str(db), "--resume", "--ray")
    proc = subprocess.run(
        [sys.executable, "-m", "serving.commands.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(out.read_bytes().splitlines()) == sorted(local.read_bytes().splitlines())
    ids = [f.name for f in files]
    assert _store_rows(db, ids) == _store_rows(local_db, ids)

    lines = proc.stderr.splitlines()
    for name in ("demo.mp4", "broken.mp4", "zidane.jpg"):  # one line per media done
        assert sum(x.startswith(f"done {name}: ") for x in lines) == 1, proc.stderr
    assert not [x for x in lines if x.startswith("done bus.jpg")]  # done before: skipped
    (error,) = [x for x in lines if x.startswith("error: ")]
    assert "broken.mp4" in error and "not a video" in error
    (scanned,) = [x for x in lines if x.startswith("scanned ")]
    assert "1 already done" in scanned and "(1 failed" in scanned
    assert lines[-1].startswith("time ") and "keyframes" in lines[-1]  # the summary's last line
    assert "Traceback" not in proc.stderr
    placed = [json.loads(x) for x in local.read_text().splitlines()]
    acme = [x for x in placed if x.get("campaign") == "acme-logo" and "start_s" in x]
    assert len(acme) == 1  # the logo was found: the comparison above compared placements


def test_ray_address_needs_ray(scene, tmp_path, capsys) -> None:
    rules, files = scene
    code = main(_args(rules, files[:1], tmp_path / "o.jsonl", "--ray-address", "auto"))
    assert code == 2
    err = capsys.readouterr().err
    assert "--ray-address" in err and "add --ray" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()  # refused before anything was written


def test_decode_workers_is_refused_under_ray(scene, tmp_path, capsys) -> None:
    rules, files = scene
    code = main(_args(rules, files[:1], tmp_path / "o.jsonl", "--ray", "--decode-workers", "2"))
    assert code == 2
    err = capsys.readouterr().err
    assert "--decode-workers sizes the local pipeline" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_ray_client_address_is_refused_before_anything(scene, tmp_path, capsys) -> None:
    rules, files = scene
    out = tmp_path / "o.jsonl"
    code = main(_args(rules, files[:1], out, "--ray", "--ray-address", "ray://head:10001"))
    assert code == 2
    err = capsys.readouterr().err
    assert "Ray Data does not run over Ray Client" in err and "--ray-address auto" in err
    assert not out.exists()


def test_ray_scan_without_ray_installed_says_what_to_install(
    scene, tmp_path, capsys, monkeypatch
) -> None:
    rules, files = scene
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(_args(rules, files[:1], tmp_path / "o.jsonl", "--ray"))
    assert code == 2
    err = capsys.readouterr().err
    assert "pip install 'onscreen[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()  # refused before any model or file


@needs_ray
def test_unreachable_ray_address_is_one_line_and_exit_2(scene, tmp_path, capsys) -> None:
    rules, files = scene
    out = tmp_path / "o.jsonl"
    code = main(_args(rules, files[:1], out, "--ray", "--ray-address", "127.0.0.1:1"))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("onscreen scan: cannot reach the Ray cluster at 127.0.0.1:1")
    assert not out.read_bytes()  # nothing scanned, nothing written
