"""Shared fixtures: real photos that ship inside installed packages (real pixels, known content)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from vision.lite import LiteModel

# Nothing may download or install itself, in tests least of all.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _package_dir(name: str) -> Path:
    module = __import__(name)
    return Path(module.__file__).resolve().parent


@pytest.fixture(scope="session")
def real_images() -> dict[str, Path]:
    """Paths of real photos: ``bus``, ``zidane`` (ultralytics), ``grace_hopper``, ``logo2``
    (matplotlib), ``astronaut``, ``coffee``, ``chelsea`` (scikit-image)."""
    ul = _package_dir("ultralytics") / "assets"
    mpl = _package_dir("matplotlib") / "mpl-data" / "sample_data"
    sk = _package_dir("skimage") / "data"
    paths = {
        "bus": ul / "bus.jpg",
        "zidane": ul / "zidane.jpg",
        "grace_hopper": mpl / "grace_hopper.jpg",
        "logo2": mpl / "logo2.png",
        "astronaut": sk / "astronaut.png",
        "coffee": sk / "coffee.png",
        "chelsea": sk / "chelsea.png",
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    assert not missing, f"test images missing from installed packages: {missing}"
    return paths


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (alpha dropped) without our own decoder."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def fetched_weights(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest entry's verified file: from the weights dir (`make weights`), else fetched
    from its source into a temporary dir; skipped (with the reason) only where the source is
    unreachable, never when the file is wrong."""
    from vision.errors import WeightsError
    from vision.weights import Manifest, fetch, resolve

    try:
        return resolve(name)
    except WeightsError:
        pass
    spec = Manifest.load().get(name)
    try:
        return fetch(spec, tmp_path_factory.mktemp("weights")).path
    except WeightsError as exc:
        if "could not be reached" in str(exc):
            pytest.skip(f"{name} not fetched and its source is unreachable: {exc}")
        raise


@pytest.fixture(scope="session")
def lite_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(EfficientNet-Lite0 state dict, all-MiniLM-L6-v2 model.zip)."""
    return (
        fetched_weights("efficientnet-lite0", tmp_path_factory),
        fetched_weights("all-minilm-l6-v2", tmp_path_factory),
    )


@pytest.fixture(scope="session")
def lite(lite_weights: tuple[Path, Path]) -> LiteModel:
    """The real ``lite`` model, loaded once per session from the manifest's verified weights."""
    from vision.lite import LiteModel

    return LiteModel(*lite_weights, device="cpu")


@pytest.fixture(scope="session")
def tiny_logo_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real logo detector for examples/rules' brands (acme, rival) with its card: trained
    in-test on 4 synthetic frames, 1 epoch at imgsz 64 (a few seconds on a 2-core CPU). It
    proves loading and refusal, not detection: one epoch from scratch finds nothing."""
    from vision.logo_training.train import train_logo_detector

    root = tmp_path_factory.mktemp("tiny-logos")
    result = train_logo_detector(
        REPO / "examples" / "rules",
        root / "logos-examples.pt",
        epochs=1,
        imgsz=64,
        n_images=4,
        batch=2,
        workdir=root / "work",
        progress=False,
    )
    return result.weights


@pytest.fixture(scope="module")
def loop():
    """One asyncio loop thread per test module, running its gRPC servers (rpc, faults)."""
    from tests.serving.rpc.grpc_fixtures import ServerThread

    thread = ServerThread()
    yield thread
    thread.close()
