"""Model-loading policy: no silent random model, clear start-up errors, notices said once."""

from __future__ import annotations

import pytest

from vision.errors import WeightsError
from vision.pipeline import RANDOM_CLIP_NOTICE, PipelineConfig, build_pipeline


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ONSCREEN_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def test_clip_off_loads_no_clip(no_weights) -> None:
    p = build_pipeline(PipelineConfig(clip="off", detector_weights=None))
    assert p.clip is None and p.analyzer.clip is None and p.notices == ()


def test_clip_auto_without_weights_says_so_and_skips(no_weights) -> None:
    p = build_pipeline(PipelineConfig(clip="auto", detector_weights=None))
    assert p.clip is None
    (notice,) = p.notices
    assert "onscreen weights fetch clip-vit-b-32-laion2b" in notice and "--random-weights" in notice


def test_clip_required_without_weights_is_a_startup_error(no_weights) -> None:
    with pytest.raises(
        WeightsError, match=r"onscreen weights fetch clip-vit-b-32-laion2b.*--random-weights"
    ):
        build_pipeline(PipelineConfig(clip="required", detector_weights=None))


def test_missing_detector_names_the_fetch_command(no_weights) -> None:
    with pytest.raises(WeightsError, match="onscreen weights fetch nudenet-320n"):
        build_pipeline(PipelineConfig(clip="off"))


def test_missing_ocr_models_name_the_fetch_command(no_weights) -> None:
    with pytest.raises(WeightsError, match="onscreen weights fetch ppocr-v4-det"):
        build_pipeline(PipelineConfig(clip="off", detector_weights=None, ocr=True))


def test_ocr_is_off_by_default(no_weights) -> None:
    p = build_pipeline(PipelineConfig(clip="off", detector_weights=None))
    assert p.analyzer.ocr is None


def test_ocr_loads_from_the_manifest_with_its_interval() -> None:
    from vision.ocr import TextReader, text_reader

    try:
        text_reader(device="cpu")
    except WeightsError as exc:
        pytest.skip(f"OCR models not fetched: {exc}")
    p = build_pipeline(
        PipelineConfig(clip="off", detector_weights=None, ocr=True, ocr_interval_s=2.0)
    )
    assert isinstance(p.analyzer.ocr, TextReader) and p.analyzer.ocr_interval_s == 2.0


def test_random_clip_is_announced_once_and_not_meaningful(no_weights, caplog) -> None:
    with caplog.at_level("WARNING"):
        p = build_pipeline(PipelineConfig(clip="random", detector_weights=None, iab=False))
    assert p.clip is not None and p.clip.is_random and not p.clip_meaningful
    assert p.notices == (RANDOM_CLIP_NOTICE,)
    assert not [r for r in caplog.records if "RANDOM WEIGHTS" in r.getMessage()]


def test_unknown_clip_mode() -> None:
    with pytest.raises(ValueError, match="clip mode must be one of"):
        PipelineConfig(clip="maybe")  # type: ignore[arg-type]
