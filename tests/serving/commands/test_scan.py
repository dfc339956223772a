"""``onscreen scan`` as a user runs it: every bad argument refused in one line before any model
loads; face-only rules (no brands/) run; a locked store is waited for, then refused in one line
without losing the media; a file name that is not UTF-8 is scanned under an escaped id."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import pytest

from serving.commands.cli import main
from serving.placement_store import PlacementStore

FACE_CAMPAIGN = "id: presenter\ntarget:\n  all:\n    - face: {min_count: 1, min_area: 0.01}\n"
BAD_NAME = b"\xff\xfe-latin1.mp4"
BAD_NAME_ID = "\\xff\\xfe-latin1.mp4"  # backslash x f f: what the id reads as


def face_rules(root: Path, brands: str = "absent") -> Path:
    """A rules directory with one face campaign and no brands/ (or an empty one)."""
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "presenter.yaml").write_text(FACE_CAMPAIGN)
    if brands == "empty":
        (root / "brands").mkdir()
    return root


def scan(*argv: str | Path) -> int:
    return main(["scan", *map(str, argv), "--quiet"])


def exit_code(argv: list[str]) -> int:
    """``onscreen ARGV``'s exit code, whether argparse exits or ``main`` returns."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def lines_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a model would load: an argument check came too late."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("models were loaded before the arguments were checked")

    monkeypatch.setattr("vision.pipeline.build_pipeline", refuse)


# --- arguments: one line, exit 2, before any work ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--interval", "0"], "argument --interval: must be a finite number of seconds > 0, got '0'"),
        (["--interval", "nan"], "argument --interval: must be a finite number of seconds > 0, got 'nan'"),
        (["--interval", "inf"], "argument --interval: must be a finite number of seconds > 0, got 'inf'"),
        (["--interval", "-1"], "argument --interval: must be a finite number of seconds > 0"),
        (["--interval", "soon"], "argument --interval: must be a number of seconds, got 'soon'"),
        (["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got '0'"),
        (["--batch-size", "2.5"], "argument --batch-size: must be a whole number >= 1, got '2.5'"),
        (["--out", "{tmp}"], "argument --out: {tmp}: is a directory, expected a file name"),
        (["--out", "{tmp}/sub/"], "argument --out: {tmp}/sub/: is a directory, expected a file name"),
        (["--parquet", "{tmp}"], "argument --parquet: {tmp}: is a directory, expected a file name"),
        (["--store", "{tmp}"], "argument --store: {tmp}: is a directory, expected a file name"),
        (["--out", "{tmp}/file.txt/o.jsonl"], "argument --out: {tmp}/file.txt/o.jsonl: {tmp}/file.txt is not a directory"),
        (["--out", "/sys/onscreen/o.jsonl"], "argument --out: /sys/onscreen/o.jsonl: cannot create a file in /sys: Permission denied"),
        (["--parquet", "/sys/p.parquet"], "argument --parquet: /sys/p.parquet: cannot create a file in /sys: Permission denied"),
        (["--rules", "/nonexistent"], "argument --rules: /nonexistent: no such directory"),
        (["--rules", "{tmp}/file.txt"], "argument --rules: {tmp}/file.txt: not a directory"),
        (["--store-wait", "nan"], "argument --store-wait: must be a finite number of seconds > 0"),
        (["--ocr-interval", "-1"], "argument --ocr-interval: must be a finite number of seconds >= 0, got '-1'"),
        (["--semantic", "big"], "argument --semantic: invalid choice: 'big'"),
        (["--random-weights", "--semantic", "off"], "--random-weights (random CLIP) and --semantic off contradict each other"),
        (["--parquet", "{tmp}/o.jsonl"], "--out and --parquet name the same file"),
        (["--decode-timeout", "0"], "argument --decode-timeout: must be a finite number of seconds > 0, got '0'"),
        (["--decode-memory-mb", "0"], "argument --decode-memory-mb: must be a whole number >= 1, got '0'"),
        (["--decode-in-process", "--decode-timeout", "5"], "--decode-timeout limit the isolated decoder, but --decode-in-process decodes without it"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_models: None, argv, expected
) -> None:
    (tmp_path / "file.txt").write_text("x")
    given = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = tmp_path / "o.jsonl"
    defaults = {"--rules": str(face_rules(tmp_path / "rules")), "--out": str(out)}
    base = [x for flag, value in defaults.items() if flag not in given for x in (flag, value)]
    code = exit_code(["scan", str(tmp_path / "file.txt"), *base, *given, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err  # one line: no usage block, no traceback
    assert err.startswith("onscreen scan: error: "), err
    assert expected.replace("{tmp}", str(tmp_path)) in err
    assert not out.exists()  # nothing was written: the scan never started


# --- real scans (the face detector on real photos) -----------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]) -> Path:
    """A 2 s, 5 fps video of zidane.jpg (two large faces), 640x360."""
    from tests.conftest import read_rgb
    from vision.video_write import write_video

    frame = cv2.resize(read_rgb(real_images["zidane"]), (640, 360), interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("clip") / "zidane.mp4"
    return write_video(path, [frame] * 10, fps=5.0)


@pytest.mark.parametrize("brands", ["absent", "empty"])
def test_face_only_rules_scan_without_brands(
    tmp_path: Path, real_images: dict[str, Path], brands: str
) -> None:
    rules = face_rules(tmp_path / "rules", brands)
    assert main(["rules", "check", str(rules)]) == 0  # what rules check accepts must run
    out = tmp_path / "new" / "dir" / "o.jsonl"  # missing parents are created
    assert scan(real_images["zidane"], "--rules", rules, "--out", out) == 0
    (p,) = lines_of(out)
    assert (p["media"], p["campaign"]) == ("zidane.jpg", "presenter")
    assert p["reasons"] and all(r["kind"] == "face" for r in p["reasons"])


def test_locked_store_fails_in_one_line_and_resume_stores_the_media(
    tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.serving.store_lock import write_lock_held

    rules = face_rules(tmp_path / "rules")
    out, store = tmp_path / "o.jsonl", tmp_path / "p.sqlite"
    PlacementStore(store).close()
    argv = [clip, "--rules", rules, "--out", out, "--store", store, "--store-wait", "1"]
    with write_lock_held(store):
        start = time.monotonic()
        code = scan(*argv)
        assert time.monotonic() - start < 120
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[-1].startswith(f"onscreen scan: placement store {store} stayed locked by another")
    assert "then rerun with --resume" in err[-1] and "Traceback" not in "\n".join(err)
    assert any("is locked by another writer; waited" in line for line in err[:-1])
    # neither its lines nor its checkpoint were written: the store comes first
    assert out.read_text() == "" and out.with_name("o.jsonl.progress").read_text() == ""
    with PlacementStore(store) as s:
        assert s.lookup("zidane.mp4") is None
    assert scan(*argv, "--resume") == 0  # the lock is gone: resume redoes the media
    placements = [x for x in lines_of(out) if "campaign" in x]
    assert [p["campaign"] for p in placements] == ["presenter"]
    with PlacementStore(store) as s:
        stored = s.lookup("zidane.mp4")
        assert stored is not None and [p.campaign for p in stored] == ["presenter"]


def test_a_file_name_that_is_not_utf8_is_scanned_under_an_escaped_id(
    tmp_path: Path, clip: Path, real_images: dict[str, Path]
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    bad = Path(os.fsdecode(os.fsencode(media) + b"/" + BAD_NAME))
    bad.write_bytes(clip.read_bytes())
    missing = Path(os.fsdecode(os.fsencode(media) + b"/\xff-gone.mp4"))
    out, store = tmp_path / "o.jsonl", tmp_path / "p.sqlite"
    parquet = tmp_path / "tables" / "p.parquet"  # a missing directory is created, like --out's
    rules = face_rules(tmp_path / "rules")
    code = scan(
        media, missing, "--rules", rules, "--out", out, "--store", store, "--parquet", parquet
    )
    assert code == 0
    raw = out.read_bytes()
    raw.decode("ascii")  # JSON escapes everything: valid text whatever the file names
    lines = lines_of(out)
    placed = [x for x in lines if "campaign" in x]
    assert [p["media"] for p in placed] == [BAD_NAME_ID]
    (error,) = [x for x in lines if "error" in x]
    assert error["media"] == "\\xff-gone.mp4" and "\\xff-gone.mp4: no such file" in error["error"]
    with PlacementStore(store) as s:
        assert s.media_ids() == [BAD_NAME_ID]
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).column("media").to_pylist() == [BAD_NAME_ID]


@pytest.mark.parametrize(
    "clause, argv, ocr, semantic",
    [
        ("- face: {min_count: 1}", [], False, "off"),
        ("- text: {any: [acme]}", [], True, "off"),
        ("- iab: {ids: ['210']}", [], True, "auto"),  # read text feeds IAB
        ("- iab: {ids: ['210']}", ["--ocr", "off"], False, "auto"),
        ("- face: {min_count: 1}", ["--ocr", "on", "--ocr-interval", "0"], True, "off"),
        ("- face: {min_count: 1}", ["--semantic", "lite"], False, "lite"),  # asked for: kept
        ("- concept: {prompt: a cat}", ["--random-weights"], False, "random"),
    ],
)
def test_models_follow_what_the_rules_use(
    tmp_path: Path, clause: str, argv: list[str], ocr: bool, semantic: str
) -> None:
    """Scan and serve load a model exactly when the rules (or the flags) need it."""
    cfg = rules_config(tmp_path, clause, argv)
    assert (cfg.ocr, cfg.semantic) == (ocr, semantic)
    if "--ocr-interval" in argv:
        assert cfg.ocr_interval_s == 0.0


@pytest.mark.parametrize(
    "clause, argv, message",
    [
        ("- text: {any: [acme]}", ["--ocr", "off"], "--ocr off, but these rules target or exclude on-screen text"),
        ("- concept: {prompt: a cat}", ["--semantic", "off"], "--semantic off, but these rules need a semantic model:\n  campaigns/c.yaml:1: campaign c uses concept"),
        ("- face: {min_count: 1}", ["--clip-int8", "--semantic", "lite"], "--clip-int8 quantizes CLIP, but --semantic lite runs no CLIP"),
    ],
)  # fmt: skip
def test_model_flags_that_contradict_the_rules(
    tmp_path: Path, clause: str, argv: list[str], message: str
) -> None:
    from vision.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as got:
        rules_config(tmp_path, clause, argv)
    assert str(got.value).startswith(message), str(got.value)


def rules_config(tmp_path: Path, clause: str, argv: list[str]):
    import argparse

    from serving.commands.model_options import add_model_options, pipeline_config_for_rules
    from targeting.rules_loader import load_rules

    root = tmp_path / "rules"
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "c.yaml").write_text(f"id: c\ntarget:\n  any:\n    {clause}\n")
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    return pipeline_config_for_rules(parser.parse_args(argv), load_rules(root))


# --- the trained logo detector: --logo-detector and logos.yaml ------------------------------------


def logo_rules(root: Path, logos: str | None = None, extra_brand: bool = False) -> Path:
    """examples/rules' brands (acme, rival), one acme logo campaign, optional logos.yaml."""
    import shutil

    from tests.conftest import REPO

    shutil.copytree(REPO / "examples" / "rules" / "brands", root / "brands")
    if extra_brand:
        shutil.copytree(root / "brands" / "acme", root / "brands" / "beanery")
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "acme.yaml").write_text(
        "id: acme\ntarget:\n  any:\n    - logo: {brand: acme}\n"
    )
    if logos is not None:
        (root / "logos.yaml").write_text(logos)
    return root


@pytest.mark.parametrize("how", ["flag", "logos.yaml"])
def test_scan_loads_the_trained_detector(
    tmp_path: Path, real_images: dict[str, Path], tiny_logo_detector: Path, how: str
) -> None:
    loaded: list[object] = []
    from serving import targeter

    real = targeter.build_fused_finder

    def spy(*args, **kwargs):
        finder = real(*args, **kwargs)
        loaded.append(finder.detector)
        return finder

    mp = pytest.MonkeyPatch()
    mp.setattr(targeter, "build_fused_finder", spy)
    try:
        if how == "flag":
            rules, extra = logo_rules(tmp_path / "rules"), ["--logo-detector", tiny_logo_detector]
        else:
            rules, extra = logo_rules(tmp_path / "rules", f"detector: {tiny_logo_detector}\n"), []
        assert main(["rules", "check", str(rules)]) == 0
        out = tmp_path / "o.jsonl"
        assert scan(real_images["bus"], "--rules", rules, "--out", out, *extra) == 0
    finally:
        mp.undo()
    (det,) = loaded
    assert det.brands == ("acme", "rival")  # type: ignore[attr-defined]
    assert out.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--logo-detector", "{tmp}/absent.pt"], "--logo-detector {tmp}/absent.pt: no such file; train one with `onscreen train-logos RULES_DIR --out {tmp}/absent.pt`"),
        (["--logo-detector", "{tmp}/file.txt"], "--logo-detector {tmp}/file.txt: not a .pt file (train-logos writes one)"),
    ],
)  # fmt: skip
def test_bad_logo_detector_exits_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_models: None, argv, expected
) -> None:
    (tmp_path / "file.txt").write_text("x")
    given = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rules = logo_rules(tmp_path / "rules")
    code = exit_code(
        [
            "scan",
            str(tmp_path / "file.txt"),
            "--rules",
            str(rules),
            "--out",
            str(tmp_path / "o"),
            *given,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err == f"onscreen scan: error: {expected.replace('{tmp}', str(tmp_path))}\n"


def test_a_detector_for_other_brands_is_refused_at_start(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_models: None,
    real_images: dict[str, Path],
    tiny_logo_detector: Path,
) -> None:
    rules = logo_rules(tmp_path / "rules", extra_brand=True)
    argv = ["--rules", str(rules), "--out", str(tmp_path / "o"), "--logo-detector"]
    code = exit_code(["scan", str(real_images["bus"]), *argv, str(tiny_logo_detector)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err == (
        "onscreen scan: error: --logo-detector: logo detector logos-examples.pt was trained for "
        "brands [acme, rival] but the rules name [acme, beanery, rival]; retrain it: `onscreen "
        f"train-logos RULES_DIR --out {tiny_logo_detector}`\n"
    )


def test_hostile_files_cost_one_error_line_and_normal_ones_match_in_process(
    tmp_path: Path, clip: Path, real_images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder that hangs, one that aborts: an error line each within the time limit, the
    media after them scanned; the placements of the normal media are byte-identical to the
    in-process decoder's."""
    import shutil

    from serving.batch.isolated_decode import TEST_HOOK_ENV

    media = tmp_path / "media"
    media.mkdir()
    for name in ("a-hang.mp4", "b-abort.mp4", "c.mp4"):
        shutil.copy(clip, media / name)
    shutil.copy(real_images["zidane"], media / "d.jpg")
    monkeypatch.setenv(TEST_HOOK_ENV, "a-hang.mp4:hang,b-abort.mp4:abort")
    rules = face_rules(tmp_path / "rules")
    isolated, in_process = tmp_path / "iso.jsonl", tmp_path / "inp.jsonl"
    start = time.monotonic()
    assert scan(media, "--rules", rules, "--out", isolated, "--decode-timeout", "3") == 0
    assert time.monotonic() - start < 90
    lines = lines_of(isolated)
    errors = {x["media"]: x["error"] for x in lines if "error" in x}
    assert errors == {
        "a-hang.mp4": f"{media / 'a-hang.mp4'}: decoding took over 3 s, the decode time limit: "
        "stopped (a broken or hostile file?)",  # it hangs before its header says 2 s more
        "b-abort.mp4": f"{media / 'b-abort.mp4'}: the decoder crashed on this file (it was "
        "killed by SIGABRT)",
    }
    assert {x["media"] for x in lines if "campaign" in x} == {"c.mp4", "d.jpg"}
    monkeypatch.delenv(TEST_HOOK_ENV)
    for name in ("a-hang.mp4", "b-abort.mp4"):
        (media / name).unlink()
    assert scan(media, "--rules", rules, "--out", in_process, "--decode-in-process") == 0
    good = [x for x in isolated.read_bytes().splitlines() if b'"error"' not in x]
    assert good == in_process.read_bytes().splitlines() and len(good) == 2


def test_a_manifest_scans_its_media_with_metadata_and_reports_bad_lines(
    tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "z.mp4").write_bytes(clip.read_bytes())
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"media_id": "ep-1", "path": "v/z.mp4", "show": "Football", "season": 3}\n'
        '{"media_id": "ep-2"}\n'
    )
    out, parquet = tmp_path / "o.jsonl", tmp_path / "p.parquet"
    rules = face_rules(tmp_path / "rules")
    code = scan("--manifest", manifest, "--rules", rules, "--out", out, "--parquet", parquet)
    assert code == 0
    bad = f"{manifest}:2: path must be a non-empty string, got None"
    assert f"onscreen scan: {bad}\n" in capsys.readouterr().err
    placed, error = lines_of(out)
    assert (placed["media"], placed["campaign"]) == ("ep-1", "presenter")
    assert placed["metadata"] == {"show": "Football", "season": 3}
    assert error == {"media": "ep-2", "error": bad}
    (row,) = pq.read_table(parquet).to_pylist()
    assert json.loads(row["metadata_json"]) == {"show": "Football", "season": 3}


def test_an_unreadable_manifest_exits_2_before_any_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_models: None
) -> None:
    rules = face_rules(tmp_path / "rules")
    gone = tmp_path / "gone.csv"
    assert scan("--manifest", gone, "--rules", rules, "--out", tmp_path / "o.jsonl") == 2
    assert capsys.readouterr().err == f"onscreen scan: error: {gone}: no such manifest\n"
    assert exit_code(["scan", "--rules", str(rules), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert (
        "nothing to scan: give media files or directories, or --manifest" in capsys.readouterr().err
    )
