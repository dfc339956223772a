"""The logo detector's pretrained start: NudeNet's fused YOLOv8n weights moved into a fresh
yolov8n, checked against the ONNX file itself on a real photo (a wrong mapping, a lost bias
or a mis-set BatchNorm changes the output), and BatchNorm recalibration that keeps it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_rgb
from vision.errors import ModelError
from vision.logo_training.pretrained import (
    INIT_WEIGHTS,
    onnx_tensors,
    pretrained_checkpoint,
    recalibrate_batchnorm,
    transfer_fused_weights,
)

pytestmark = pytest.mark.slow

SIZE = 320


@pytest.fixture(scope="module")
def onnx_path() -> Path:
    from vision.weights import resolve

    return resolve(INIT_WEIGHTS)


@pytest.fixture(scope="module")
def photos(real_images) -> list[np.ndarray]:
    return [read_rgb(real_images[n]) for n in ("bus", "zidane", "astronaut", "coffee")]


def _input(image: np.ndarray) -> np.ndarray:
    import cv2

    x = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return x.transpose(2, 0, 1)[None]


def _yolo(nc: int):
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel("yolov8n.yaml", nc=nc, verbose=False)


def _torch_out(model, x: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x))[0].numpy()


def test_the_transferred_model_computes_what_the_onnx_file_does(onnx_path, photos) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = _yolo(18)  # NudeNet's 18 classes: every tensor fits
    transfer = transfer_fused_weights(model, onnx_tensors(onnx_path))
    assert transfer.skipped == () and len(transfer.copied) == 127
    for image in photos[:2]:
        x = _input(image)
        expected = session.run(None, {"images": x})[0]
        got = _torch_out(model, x)
        assert got.shape == expected.shape == (1, 22, 2100)
        assert np.abs(got - expected).max() < 1e-5 * np.abs(expected).max() + 1e-3
    fresh = _yolo(18)
    assert np.abs(_torch_out(fresh, _input(photos[0])) - expected).max() > 1.0  # not by chance


def test_only_the_class_head_starts_fresh_for_other_classes(onnx_path) -> None:
    transfer = transfer_fused_weights(_yolo(2), onnx_tensors(onnx_path))
    assert sorted(transfer.skipped) == sorted(
        f"model.22.cv3.{i}.2.{k}" for i in range(3) for k in ("weight", "bias")
    )
    assert len(transfer.copied) == 121
    assert transfer.summary == "121 tensors from nudenet-320n, 6 fresh"


def test_recalibration_sets_real_statistics_and_keeps_the_output(onnx_path, photos) -> None:
    import torch

    model = _yolo(18)
    transfer_fused_weights(model, onnx_tensors(onnx_path))
    x = _input(photos[3])
    before = _torch_out(model, x)
    assert recalibrate_batchnorm(model, photos[:3], SIZE) == 57
    after = _torch_out(model, x)
    assert np.abs(after - before).max() < 1e-4 * np.abs(before).max() + 1e-3
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert recalibrate_batchnorm(model, [], SIZE) == 0
    # Training normalizes by batch statistics: on the calibration images they now equal the
    # running ones, so a training step starts from the pretrained function (the last
    # BatchNorm's output in train mode = in eval mode); uncalibrated, it does not.
    batch = torch.from_numpy(np.concatenate([_input(p) for p in photos[:3]]))
    plain = _yolo(18)
    transfer_fused_weights(plain, onnx_tensors(onnx_path))
    gaps = []
    for m in (model, plain):
        last_bn = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)][-1]
        seen: list[torch.Tensor] = []
        hook = last_bn.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out))
        with torch.no_grad():
            m.eval()
            m(batch)
            m.train()
            m(batch)
        hook.remove()
        gaps.append(float((seen[1] - seen[0]).abs().max() / seen[0].abs().max()))
    assert gaps[0] < 1e-3 < 0.1 < gaps[1], gaps


def test_a_checkpoint_ultralytics_loads(onnx_path, photos, tmp_path: Path) -> None:
    from ultralytics.nn.tasks import load_checkpoint

    out = tmp_path / "init.pt"
    transfer = pretrained_checkpoint(
        onnx_path, ["acme", "rival"], out, calibration_images=photos[:2], imgsz=SIZE
    )
    assert len(transfer.copied) == 121
    model, _ckpt = load_checkpoint(out)
    assert model.names == {0: "acme", 1: "rival"}
    assert _torch_out(model, _input(photos[0])).shape == (1, 6, 2100)


def test_a_file_that_is_not_a_yolov8_export_is_refused(tmp_path: Path) -> None:
    from vision.weights import resolve

    with pytest.raises(ModelError, match="not an ultralytics YOLOv8 export"):
        transfer_fused_weights(_yolo(2), onnx_tensors(resolve("ppocr-v4-det")))
