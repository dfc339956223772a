"""Model-loading policy: no silent random model, clear start-up errors, notices said once."""

from __future__ import annotations

import pytest

from vision.errors import WeightsError
from vision.pipeline import RANDOM_CLIP_NOTICE, PipelineConfig, build_pipeline


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ONSCREEN_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def test_semantic_off_loads_no_model(no_weights) -> None:
    p = build_pipeline(PipelineConfig(semantic="off", detector_weights=None))
    assert p.semantic is None and p.analyzer.semantic is None and p.notices == ()
    assert p.semantic_name == "off" and p.meaningful


def test_auto_without_any_weights_names_the_lite_fetch(no_weights) -> None:
    """auto falls back to lite when CLIP's weights are absent; without lite's either, a start-up
    error names the fetch command and the ways out (no silent skip, no random model)."""
    with pytest.raises(
        WeightsError,
        match=r"(?s)onscreen weights fetch efficientnet-lite0 all-minilm-l6-v2.*--semantic off"
        r".*--random-weights",
    ):
        build_pipeline(PipelineConfig(semantic="auto", detector_weights=None))


def test_clip_without_weights_is_a_startup_error(no_weights) -> None:
    with pytest.raises(
        WeightsError, match=r"(?s)onscreen weights fetch clip-vit-b-32-laion2b.*--random-weights"
    ):
        build_pipeline(PipelineConfig(semantic="clip", detector_weights=None))


def test_missing_detector_names_the_fetch_command(no_weights) -> None:
    with pytest.raises(WeightsError, match="onscreen weights fetch nudenet-320n"):
        build_pipeline(PipelineConfig(semantic="off"))


def test_missing_ocr_models_name_the_fetch_command(no_weights) -> None:
    with pytest.raises(WeightsError, match="onscreen weights fetch ppocr-v4-det"):
        build_pipeline(PipelineConfig(semantic="off", detector_weights=None, ocr=True))


def test_ocr_is_off_by_default(no_weights) -> None:
    p = build_pipeline(PipelineConfig(semantic="off", detector_weights=None))
    assert p.analyzer.ocr is None


def test_ocr_loads_from_the_manifest_with_its_interval() -> None:
    from vision.ocr import TextReader, text_reader

    try:
        text_reader(device="cpu")
    except WeightsError as exc:
        pytest.skip(f"OCR models not fetched: {exc}")
    p = build_pipeline(
        PipelineConfig(semantic="off", detector_weights=None, ocr=True, ocr_interval_s=2.0)
    )
    assert isinstance(p.analyzer.ocr, TextReader) and p.analyzer.ocr_interval_s == 2.0


def test_random_clip_is_announced_once_and_not_meaningful(no_weights, caplog) -> None:
    with caplog.at_level("WARNING"):
        p = build_pipeline(PipelineConfig(semantic="random", detector_weights=None, iab=False))
    assert p.semantic is not None and p.semantic_name == "clip-random" and not p.meaningful
    assert p.notices == (RANDOM_CLIP_NOTICE,)
    assert not [r for r in caplog.records if "RANDOM WEIGHTS" in r.getMessage()]


def test_unknown_semantic_choice() -> None:
    with pytest.raises(ValueError, match="semantic model must be one of"):
        PipelineConfig(semantic="maybe")  # type: ignore[arg-type]
