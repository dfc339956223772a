"""``onscreen analyze``: real models on real photos, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.commands.cli import main


def test_analyze_grace_hopper_json_has_one_face_with_box(real_images, capsys) -> None:
    assert main(["analyze", str(real_images["grace_hopper"]), "--json", "--semantic", "off"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"faces", "logos", "safety", "concepts", "t", "media"}
    assert len(out["faces"]) == 1
    face = out["faces"][0]
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert y1 < 0.75 and 0.02 < (x1 - x0) * (y1 - y0) < 0.5  # a head, in the upper part
    assert face["score"] > 0.4


def test_analyze_table_names_the_face(real_images, capsys) -> None:
    assert main(["analyze", str(real_images["zidane"]), "--semantic", "off"]) == 0
    out = capsys.readouterr().out
    assert out.count("face") >= 2


def test_analyze_video_lists_keyframes_with_t_and_logos(tmp_path: Path, capsys) -> None:
    from examples.build_media import RULES, LogoOverlay, Scene, build_video

    video = tmp_path / "v.mp4"
    build_video(
        video,
        (Scene("bus", 0.0, 2.0), Scene("coffee", 2.0, 3.0)),
        (LogoOverlay("rival", 1.0, 3.0, center=(0.7, 0.7), scale=0.3),),
    )
    code = main(
        ["analyze", str(video), "--json", "--semantic", "off", "--brands", str(RULES / "brands")]
    )
    assert code == 0
    frames = json.loads(capsys.readouterr().out)
    assert isinstance(frames, list)
    ts = [f["t"] for f in frames]
    assert ts == sorted(ts) and ts[0] == 0.0 and 2.0 in ts  # the cut at 2.0 s is a keyframe
    with_logo = [f["t"] for f in frames if any(m["brand"] == "rival" for m in f["logos"])]
    assert with_logo and min(with_logo) >= 1.0 - 0.5 and max(with_logo) >= 2.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"\x00\x01garbage" * 10, "not"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "JPEG"),
    ],
    ids=["missing", "empty", "random-bytes", "truncated-jpeg"],
)
def test_analyze_bad_file_exits_2_with_one_line(tmp_path: Path, capsys, content, message) -> None:
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    code = main(["analyze", str(path), "--semantic", "off"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("onscreen analyze: ")
    assert message.lower() in err[0].lower() and "bad.jpg" in err[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--interval", "nan"], "argument --interval: must be a finite number of seconds > 0, got 'nan'"),
        (["--interval", "0"], "argument --interval: must be a finite number of seconds > 0, got '0'"),
        (["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got '0'"),
        (["--brands", "/nonexistent"], "argument --brands: /nonexistent: no such directory"),
        (["--random-weights", "--semantic", "off"], "--random-weights (random CLIP) and --semantic off contradict each other"),
    ],
)  # fmt: skip
def test_analyze_bad_arguments_exit_2_with_one_line_before_any_model(
    real_images, capsys, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("models were loaded before the arguments were checked")

    monkeypatch.setattr("serving.commands.model_options.build_pipeline", refuse)
    try:
        code = main(["analyze", str(real_images["zidane"]), *argv])
    except SystemExit as e:
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("onscreen analyze: error: "), err
    assert expected in err


@pytest.mark.parametrize(("photo", "tier1"), [("chelsea", "Pets"), ("coffee", "Food & Drink")])
def test_analyze_json_names_the_iab_category_with_the_default_model(
    real_images, capsys, photo: str, tier1: str
) -> None:
    """No flags: `auto` picks lite here (no CLIP weights), and its top IAB category is right."""
    from vision.taxonomy import iab_by_id

    assert main(["analyze", str(real_images[photo]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    top = out["concepts"][0]
    assert iab_by_id()[top["id"]].path[0] == tier1, out["concepts"]
