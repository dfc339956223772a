"""``logos.yaml`` (targeting.logos_config) through ``load_rules`` / ``rules check``: every
problem at ``logos.yaml:line`` with its exact message; what a good file loads as.

The card checks need no model: a weights file and its card (``register_detector``) are all
they read, so these tests stay fast; loading a real trained detector is tested in
tests/serving/test_targeter_logos.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from serving.commands.cli import main
from targeting.logos_config import LogosConfig, detector_settings
from targeting.rules_loader import load_rules
from tests.conftest import REPO
from vision.brands import load_brands
from vision.errors import RulesError
from vision.logo_fusion import DetectorSettings
from vision.logo_training.registry import file_sha256, register_detector

CAMPAIGN = "id: acme\ntarget:\n  any:\n    - logo: {brand: acme}\n"


def rules_dir(root: Path, logos: str | None = None) -> Path:
    """examples/rules' brands (acme, rival), one logo campaign, and ``logos.yaml`` if given."""
    shutil.copytree(REPO / "examples" / "rules" / "brands", root / "brands")
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "acme.yaml").write_text(CAMPAIGN)
    if logos is not None:
        (root / "logos.yaml").write_text(logos)
    return root


def registered(weights: Path, brands_dir: Path) -> Path:
    """A weights file with a card for the brands of ``brands_dir`` (not a model: the card
    checks read only the bytes' hash and the card)."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"weights bytes " + str(weights).encode())
    register_detector(weights, load_brands(brands_dir), imgsz=64, epochs=1)
    return weights


def problems(root: Path) -> list[str]:
    with pytest.raises(RulesError) as got:
        load_rules(root)
    return [str(p) for p in got.value.problems]


def test_a_good_file_loads_with_relative_path_and_defaults(tmp_path: Path) -> None:
    root = rules_dir(tmp_path / "rules", "detector: ../weights/logos-demo.pt\nmin_score: 0.4\n")
    weights = registered(tmp_path / "weights" / "logos-demo.pt", root / "brands")
    rules = load_rules(root)
    assert rules.logos == LogosConfig(
        detector=weights.resolve(), min_score=0.4, verify="matcher", verify_threshold=0.3, line=1
    )
    assert detector_settings(rules.logos, None) == DetectorSettings(weights.resolve(), 0.4)
    flag = tmp_path / "other.pt"  # the flag overrides the path, the other keys still apply
    assert detector_settings(rules.logos, flag) == DetectorSettings(flag, 0.4)
    assert detector_settings(None, None) is None


def test_verify_none_keeps_detections_as_scored(tmp_path: Path) -> None:
    weights = registered(tmp_path / "w" / "x.pt", REPO / "examples" / "rules" / "brands")
    root = rules_dir(tmp_path / "rules", f"detector: {weights}\nverify: none\nmin_score: 0.5\n")
    settings = detector_settings(load_rules(root).logos, None)
    assert settings is not None and settings.verify == "none"
    assert settings.fusion().keep_unverified_above == 0.5


def test_keep_above_keeps_unconfirmed_detections_over_it(tmp_path: Path) -> None:
    weights = registered(tmp_path / "w" / "x.pt", REPO / "examples" / "rules" / "brands")
    root = rules_dir(tmp_path / "rules", f"detector: {weights}\nkeep_above: 0.7\n")
    settings = detector_settings(load_rules(root).logos, None)
    assert settings is not None and (settings.verify, settings.keep_above) == ("matcher", 0.7)
    assert settings.fusion().keep_unverified_above == 0.7
    default = detector_settings(
        load_rules(rules_dir(tmp_path / "r2", f"detector: {weights}\n")).logos, None
    )
    assert default is not None and default.fusion().keep_unverified_above is None


def test_without_a_detector_key_the_flag_names_it(tmp_path: Path) -> None:
    rules = load_rules(rules_dir(tmp_path / "rules", "verify_threshold: 0.5\n"))
    assert rules.logos is not None and rules.logos.detector is None
    assert detector_settings(rules.logos, None) is None
    assert detector_settings(rules.logos, Path("d.pt")) == DetectorSettings(
        Path("d.pt"), verify_threshold=0.5
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("min_score: 0.3\ndetectr: x.pt\n", "logos.yaml:2: detectr: unknown key 'detectr' (did you mean 'detector'? known: detector, min_score, verify, verify_threshold, keep_above)"),
        ("min_score: 0\n", "logos.yaml:1: min_score: must be a number in (0, 1], got 0"),
        ("min_score: true\n", "logos.yaml:1: min_score: must be a number in (0, 1], got true/false (True)"),
        ("verify_threshold: 1.5\n", "logos.yaml:1: verify_threshold: must be a number in (0, 1], got 1.5"),
        ("verify: semantic\n", "logos.yaml:1: verify: 'semantic' verification is not implemented: use matcher (the reference matcher confirms each detection) or none (detections are kept as scored)"),
        ("verify: clip\n", "logos.yaml:1: verify: must be one of matcher, none, got text 'clip'"),
        ("verify: none\nverify_threshold: 0.4\n", "logos.yaml:2: verify_threshold: applies only to verify: matcher (verify is none here): drop one of them"),
        ("verify: none\nkeep_above: 0.7\n", "logos.yaml:2: keep_above: applies only to verify: matcher (verify is none here): drop one of them"),
        ("keep_above: 0\n", "logos.yaml:1: keep_above: must be a number in (0, 1], got 0"),
        ("", "logos.yaml:1: file is empty: name a detector (detector: PATH) or delete the file"),
        ("- detector\n", "logos.yaml:1: top level should be a mapping (detector: ..., min_score: ...), got a list"),
        ("detector: 3\n", "logos.yaml:1: detector: must be a path to a .pt file, got 3"),
        ("detector: weights.onnx\n", "logos.yaml:1: detector: 'weights.onnx' is not a .pt file (train-logos writes .pt files)"),
        ("detector: a.pt\ndetector: b.pt\n", "logos.yaml:2: detector: key 'detector' appears twice (first on line 1); keep one"),
    ],
)  # fmt: skip
def test_problems_at_file_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(rules_dir(tmp_path / "rules", text))


def test_missing_detector_names_the_resolved_path_and_the_command(tmp_path: Path) -> None:
    root = rules_dir(tmp_path / "rules", "verify: matcher\ndetector: ../w/absent.pt\n")
    want = tmp_path / "w" / "absent.pt"
    assert problems(root) == [
        f"logos.yaml:2: detector: '../w/absent.pt' not found (resolved to {want}; relative "
        f"paths start at the rules directory); train one with `onscreen train-logos "
        f"{root} --out {want}`"
    ]


def test_a_card_for_other_brands_is_refused_naming_both_lists(tmp_path: Path) -> None:
    weights = registered(tmp_path / "w" / "logos.pt", REPO / "examples" / "rules" / "brands")
    root = rules_dir(tmp_path / "rules", f"detector: {weights}\n")
    shutil.copytree(root / "brands" / "acme", root / "brands" / "beanery")
    assert problems(root) == [
        "logos.yaml:1: detector: logo detector logos.pt was trained for brands [acme, rival] "
        "but the rules name [acme, beanery, rival]; retrain it: `onscreen train-logos "
        f"RULES_DIR --out {weights}`"
    ]


def test_weights_that_are_not_the_cards_are_refused(tmp_path: Path) -> None:
    weights = registered(tmp_path / "w" / "logos.pt", REPO / "examples" / "rules" / "brands")
    old = file_sha256(weights)
    weights.write_bytes(b"replaced")
    new = file_sha256(weights)
    root = rules_dir(tmp_path / "rules", f"detector: {weights}\n")
    assert problems(root) == [
        f"logos.yaml:1: detector: logo detector {weights}: sha256 {new[:12]}... does not match "
        f"its card's {old[:12]}... (the file was replaced or damaged); retrain it: "
        f"`onscreen train-logos RULES_DIR --out {weights}`"
    ]


def test_a_missing_card_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "w" / "bare.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"x")
    root = rules_dir(tmp_path / "rules", f"detector: {weights}\n")
    (msg,) = problems(root)
    assert msg.startswith(f"logos.yaml:1: detector: logo detector {weights}: its card bare.pt.json")


def test_a_detector_without_brands_is_refused(tmp_path: Path) -> None:
    weights = registered(tmp_path / "w" / "logos.pt", REPO / "examples" / "rules" / "brands")
    root = tmp_path / "rules"
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "f.yaml").write_text("id: f\ntarget:\n  any:\n    - face: {}\n")
    (root / "logos.yaml").write_text(f"detector: {weights}\n")
    assert problems(root) == [
        "logos.yaml:1: detector: a logo detector needs brands, and these rules have none: add "
        "reference images under brands/<brand>/ or drop the detector"
    ]


def test_a_retrained_detector_is_a_new_rules_version(tmp_path: Path) -> None:
    weights = registered(tmp_path / "w" / "logos.pt", REPO / "examples" / "rules" / "brands")
    root = rules_dir(tmp_path / "rules", f"detector: {weights}\n")
    before = load_rules(root).version
    assert load_rules(root).version == before
    weights.write_bytes(b"retrained")
    register_detector(weights, load_brands(root / "brands"), imgsz=64, epochs=2)
    assert load_rules(root).version != before


def test_rules_check_prints_the_problem_at_file_line(tmp_path: Path, capsys) -> None:
    root = rules_dir(tmp_path / "rules", "detector: ../absent.pt\nverify: semantic\n")
    assert main(["rules", "check", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("logos.yaml:1: detector: '../absent.pt' not found")
    assert out[1].startswith("logos.yaml:2: verify: 'semantic' verification is not implemented")
