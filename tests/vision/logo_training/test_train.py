"""Training smoke (tiny, offline) and loading a trained logo detector against brands."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, read_rgb
from vision.brands import load_brands
from vision.errors import ModelError
from vision.logo_detector import LogoDetector
from vision.logo_training.registry import (
    CARD_FORMAT,
    DetectorCard,
    brands_fingerprint,
    card_path,
    file_sha256,
)
from vision.logo_training.train import TrainResult, train_logo_detector

RULES = REPO / "examples" / "rules"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, list[object], float]:
    """A tiny training (6 frames, 1 epoch, imgsz 160) with every network call refused
    (about 15 s on an idle 2-core CPU; its time is not asserted, the machine is shared)."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled in this test")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket, "getaddrinfo", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket.socket, "connect", refuse)
    root = tmp_path_factory.mktemp("train")
    started = time.perf_counter()
    try:
        result = train_logo_detector(
            RULES,
            root / "weights" / "logos-examples.pt",
            epochs=1,
            imgsz=160,
            n_images=6,
            batch=4,
            workdir=root / "work",
            progress=True,
        )
    finally:
        mp.undo()
    return result, attempts, time.perf_counter() - started


@pytest.mark.slow
def test_tiny_training_runs_offline_and_writes_a_card(trained, capsys) -> None:
    result, attempts, _seconds = trained
    assert attempts == [], "training tried to reach the network"
    assert result.weights.is_file() and result.weights.name == "logos-examples.pt"
    card = json.loads(card_path(result.weights).read_text())
    brands = load_brands(RULES / "brands")
    assert card["format"] == CARD_FORMAT
    assert card["classes"] == ["acme", "rival"]
    assert card["weights_sha256"] == file_sha256(result.weights)
    assert card["brands_fingerprint"] == brands_fingerprint(brands)
    assert (card["imgsz"], card["epochs"], card["n_images"]) == (160, 1, 6)
    assert card["architecture"] == "yolov8n.yaml" and card["pretrained"] is True
    assert (card["derived_from"], card["license"]) == ("nudenet-320n", "AGPL-3.0")
    assert set(card["metrics"]) == {"precision", "recall", "mAP50", "mAP50-95"}
    assert DetectorCard.read(result.weights) == result.card
    assert (result.dataset.n_train, result.dataset.n_val) == (5, 1)
    # The run went to the work dir, nothing beside the weights but the card.
    assert sorted(p.name for p in result.weights.parent.iterdir()) == [
        "logos-examples.pt",
        "logos-examples.pt.json",
    ]


@pytest.mark.slow
def test_loaded_detector_runs_on_real_photos(trained, real_images) -> None:
    result, _, _ = trained
    det = LogoDetector(result.weights, load_brands(RULES / "brands"), device="cpu")
    assert det.brands == ("acme", "rival") and det.card.imgsz == 160
    photos = [read_rgb(real_images["bus"]), read_rgb(real_images["coffee"])]
    out = det.match_many(photos)
    assert len(out) == 2
    for matches in out:
        for m in matches:  # a 1-epoch model finds little; whatever it finds is well formed
            assert m.method == "detector" and m.brand in det.brands
    assert det.match_many([]) == []
    with pytest.raises(ValueError, match=r"images\[0\] must be an \(H, W, 3\) uint8"):
        det.match_many([np.zeros((4, 4), np.uint8)])


@pytest.mark.slow
def test_detector_for_other_brands_is_refused_naming_both(trained) -> None:
    result, _, _ = trained
    with pytest.raises(ModelError) as err:
        LogoDetector(result.weights, ["acme", "zenith"], device="cpu")
    msg = str(err.value)
    assert "trained for brands [acme, rival] but the rules name [acme, zenith]" in msg
    assert "onscreen train-logos" in msg
    with pytest.raises(
        ModelError, match=r"trained for brands \[acme, rival\] but the rules name \[acme\]"
    ):
        LogoDetector(result.weights, ["acme"], device="cpu")


@pytest.mark.slow
def test_replaced_weights_and_missing_card_are_refused(trained, tmp_path: Path) -> None:
    result, _, _ = trained
    copy = tmp_path / "logos.pt"
    shutil.copy(result.weights, copy)
    with pytest.raises(ModelError, match="its card logos.pt.json is missing"):
        LogoDetector(copy, ["acme", "rival"], device="cpu")
    shutil.copy(card_path(result.weights), card_path(copy))
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card's"):
        LogoDetector(copy, ["acme", "rival"], device="cpu")
    card_path(copy).write_text("{not json")
    with pytest.raises(ModelError, match="not a readable logo detector card"):
        LogoDetector(copy, ["acme", "rival"], device="cpu")
    with pytest.raises(ModelError, match="absent.pt not found; train one"):
        LogoDetector(tmp_path / "absent.pt", ["acme"], device="cpu")


@pytest.mark.slow
def test_changed_reference_images_warn_but_load(trained, tmp_path: Path, caplog) -> None:
    result, _, _ = trained
    brands = tmp_path / "brands"
    shutil.copytree(RULES / "brands", brands)
    from PIL import Image

    with Image.open(brands / "rival" / "logo.png") as im:
        im.rotate(90).save(brands / "rival" / "logo.png")
    with caplog.at_level("WARNING", logger="vision.logo_detector"):
        det = LogoDetector(result.weights, load_brands(brands), device="cpu")
    assert det.brands == ("acme", "rival")
    assert "trained on other reference images" in caplog.text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"out": Path("x.onnx")}, "written as a .pt file"),
        ({"epochs": 0}, "epochs must be 1..1000"),
        ({"imgsz": 100}, "imgsz must be a multiple of 32"),
        ({"n_images": 1}, "images must be 2..200000"),
        ({"device": "tpu"}, "device must be cpu, cuda or cuda:N"),
    ],
)
def test_training_argument_errors(kwargs: dict, message: str, tmp_path: Path) -> None:
    args = {"out": tmp_path / "x.pt", **kwargs}
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(".", r"\.")):
        train_logo_detector(RULES, **args)
