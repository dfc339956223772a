"""The real ``lite`` model, loaded once per session from the manifest's verified weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fetched_weights
from vision.lite import LiteModel


@pytest.fixture(scope="session")
def lite_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(EfficientNet-Lite0 state dict, all-MiniLM-L6-v2 model.zip)."""
    return (
        fetched_weights("efficientnet-lite0", tmp_path_factory),
        fetched_weights("all-minilm-l6-v2", tmp_path_factory),
    )


@pytest.fixture(scope="session")
def lite(lite_weights: tuple[Path, Path]) -> LiteModel:
    return LiteModel(*lite_weights, device="cpu")
