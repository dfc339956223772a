"""The trained logo detector in the rules snapshot (serving.targeter): fused with the matcher
when ``logos.yaml`` or ``--logo-detector`` names it, refused at start and on reload when its
card's brands are not the rules', and named in the reasons it contributes to.

A 1-epoch detector finds nothing, so the fusion wiring is tested with fixed detections (a
stand-in with the detector's ``brands``/``match_many`` interface, as in
tests/vision/test_logo_fusion.py) on real frames with real logos that the real matcher sees;
the real trained file is tested for loading and refusal.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pytest

from serving.facts_json import facts_to_json
from serving.targeter import Targeter
from targeting.rules_loader import load_rules
from targeting.rules_watch import RulesHolder
from tests.conftest import REPO, read_rgb
from vision.brands import load_brands
from vision.errors import ModelError
from vision.logo_detector import LogoDetector
from vision.logo_fusion import DetectorSettings, FusedLogoFinder, FusionConfig
from vision.logo_matcher import LogoMatcher
from vision.media import load_frames
from vision.pipeline import Pipeline, PipelineConfig, build_pipeline
from vision.synthetic import paste_logo
from vision.types import Box, LogoMatch

BRANDS = REPO / "examples" / "rules" / "brands"
CAMPAIGNS = {
    "acme": "id: acme\ntarget:\n  any:\n    - logo: {brand: acme}\n",
    "rival": "id: rival\ntarget:\n  any:\n    - logo: {brand: rival}\n",
}


class FixedDetections:
    """The same detections for every frame (the LogoCandidates interface)."""

    brands = ("acme", "rival")

    def __init__(self, detections: Sequence[LogoMatch]) -> None:
        self.detections = list(detections)

    def match_many(self, images: Sequence[np.ndarray]) -> list[list[LogoMatch]]:
        return [list(self.detections) for _ in images]


def rules_dir(root: Path, logos: str | None = None) -> Path:
    shutil.copytree(BRANDS, root / "brands")
    (root / "campaigns").mkdir(parents=True)
    for cid, text in CAMPAIGNS.items():
        (root / "campaigns" / f"{cid}.yaml").write_text(text)
    if logos is not None:
        (root / "logos.yaml").write_text(logos)
    return root


def pipeline(logo_detector: Path | None = None) -> Pipeline:
    """No semantic model, no face detector: only logos matter here."""
    settings = DetectorSettings(logo_detector) if logo_detector is not None else None
    return build_pipeline(
        PipelineConfig(semantic="off", detector_weights=None, logo_detector=settings)
    )


@pytest.fixture(scope="module")
def rival_frame(tmp_path_factory: pytest.TempPathFactory, real_images) -> tuple[Path, Box]:
    """zidane.jpg with rival's logo 20% of the frame wide (the matcher finds it)."""
    ref = next(r for r in load_brands(BRANDS) if r.brand == "rival")
    mask = ref.masks[0]
    alpha = np.full(ref.images[0].shape[:2], 255, np.uint8) if mask is None else mask
    image, box = paste_logo(
        read_rgb(real_images["zidane"]),
        np.dstack([ref.images[0], alpha]),
        center=(0.3, 0.6),
        scale=0.2,
    )
    path = tmp_path_factory.mktemp("frames") / "rival.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path, box


def _reasons(targeter: Targeter, snap, path: Path) -> dict[str, list[str]]:
    facts = list(targeter.analyze(load_frames(path), snap))
    placements = targeter.place(facts, media=path.name, today=date(2026, 1, 1), snapshot=snap)
    return {p.campaign: [r.detail for r in p.reasons] for p in placements}


def test_reasons_name_the_finders_that_saw_the_logo(tmp_path: Path, rival_frame) -> None:
    path, box = rival_frame
    targeter = Targeter(pipeline(), load_rules(rules_dir(tmp_path / "rules")))
    plain = targeter.snapshot
    assert isinstance(plain.logos, LogoMatcher) and plain.detector is None
    assert _reasons(targeter, plain, path) == {"rival": ["score >= 0.5, by matcher"]}

    matcher = plain.logos
    both = FusedLogoFinder(matcher, FixedDetections([LogoMatch("rival", 0.6, box, "detector")]))
    snap = dataclasses.replace(plain, logos=both)
    assert _reasons(targeter, snap, path) == {"rival": ["score >= 0.5, by matcher and detector"]}
    facts = list(targeter.analyze(load_frames(path), snap))
    (logo,) = facts_to_json(facts[0])["logos"]
    assert (logo["method"], logo["sources"]) == ("features", ["matcher", "detector"])

    # detector-only, unverified (verify: none): acme where no acme logo is
    acme = LogoMatch("acme", 0.7, (0.6, 0.1, 0.8, 0.2), "detector")
    none = DetectorSettings(Path("unused.pt"), min_score=0.25, verify="none").fusion()
    snap = dataclasses.replace(plain, logos=FusedLogoFinder(matcher, FixedDetections([acme]), none))
    got = _reasons(targeter, snap, path)
    assert got["acme"] == ["score >= 0.5, by detector"]
    # ...and with verify: matcher the matcher refuses it (no acme there): no acme placement
    snap = dataclasses.replace(
        plain, logos=FusedLogoFinder(matcher, FixedDetections([acme]), FusionConfig())
    )
    assert "acme" not in _reasons(targeter, snap, path)


def test_analyze_uses_the_fused_finder_given_brands_and_a_detector(tiny_logo_detector) -> None:
    pipe = build_pipeline(
        PipelineConfig(
            brands_dir=BRANDS,
            semantic="off",
            detector_weights=None,
            logo_detector=DetectorSettings(tiny_logo_detector),
        )
    )
    logos = pipe.analyzer.logos
    assert isinstance(logos, FusedLogoFinder) and isinstance(logos.detector, LogoDetector)
    assert logos.detector.brands == ("acme", "rival")


def test_the_real_detector_loads_by_flag_and_by_logos_yaml(
    tmp_path: Path, tiny_logo_detector: Path, rival_frame
) -> None:
    by_flag = Targeter(pipeline(tiny_logo_detector), load_rules(rules_dir(tmp_path / "a")))
    rules = load_rules(rules_dir(tmp_path / "b", f"detector: {tiny_logo_detector}\n"))
    by_file = Targeter(pipeline(), rules)
    for t in (by_flag, by_file):
        det = t.snapshot.detector
        assert isinstance(det, LogoDetector) and det.weights == tiny_logo_detector.resolve()
        facts = list(t.analyze(load_frames(rival_frame[0])))  # runs; a 1-epoch model may miss
        assert len(facts) == 1


def test_brands_other_than_the_cards_are_refused_at_start(
    tmp_path: Path, tiny_logo_detector: Path
) -> None:
    root = rules_dir(tmp_path / "rules")
    shutil.copytree(root / "brands" / "acme", root / "brands" / "beanery")
    with pytest.raises(ModelError, match=r"trained for brands \[acme, rival\] but the rules "
                       r"name \[acme, beanery, rival\]"):  # fmt: skip
        Targeter(pipeline(tiny_logo_detector), load_rules(root))


@pytest.mark.parametrize("how", ["flag", "logos.yaml"])
def test_a_reload_whose_brands_leave_the_detector_is_rejected_whole(
    tmp_path: Path, tiny_logo_detector: Path, how: str
) -> None:
    logos = f"detector: {tiny_logo_detector}\n" if how == "logos.yaml" else None
    root = rules_dir(tmp_path / "rules", logos)
    pipe = pipeline(tiny_logo_detector if how == "flag" else None)
    box: list[Targeter] = []

    def on_change(new) -> None:  # what serving.rpc.server does
        if box:
            box[0].swap(new)
        else:
            box.append(Targeter(pipe, new))

    holder = RulesHolder(root, on_change=on_change)
    good = box[0].snapshot
    shutil.copytree(root / "brands" / "acme", root / "brands" / "beanery")
    result = holder.reload()
    assert not result.ok and not result.changed
    (problem,) = result.problems
    assert "was trained for brands [acme, rival] but the rules name [acme, beanery, rival]" in (
        problem.message
    )
    if how == "logos.yaml":
        assert (problem.file, problem.line, problem.field) == ("logos.yaml", 1, "detector")
    else:
        assert problem.message.startswith("new rules could not be applied: ")
    assert box[0].snapshot is good and holder.current.version == good.version
    shutil.rmtree(root / "brands" / "beanery")  # back to the detector's brands: applied
    (root / "campaigns" / "extra.yaml").write_text(CAMPAIGNS["acme"].replace("id: acme", "id: x"))
    assert holder.reload().ok and box[0].snapshot is not good
    assert isinstance(box[0].snapshot.detector, LogoDetector)
