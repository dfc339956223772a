"""A pretrained start for the logo detector: the weights of the NudeNet YOLOv8n export.

Why this exists: from random weights, yolov8n learns nothing useful within a CPU budget
(10 epochs on 160 frames gave mAP50 0.000, BENCHMARKS.md), and no COCO checkpoint is reachable
(GitHub releases are not). The one YOLOv8n whose weights *are* reachable is NudeNet's
``320n.onnx`` (``nudenet-320n`` in the weights manifest, from PyPI, already the face/safety
detector): the same architecture trained on real photos of people. Its backbone and neck
(edges, textures, parts, multi-scale features) and its box-regression head transfer to logos;
only the class head's last layer (18 NudeNet classes, not our brands) starts afresh.

How: the ultralytics export fused each Conv+BatchNorm into one convolution with a bias and
kept the module paths as initializer names (``model.2.cv1.conv.weight``/``.bias``), so each
tensor maps onto the same path of a fresh ``yolov8n.yaml`` model. A fused bias has nowhere to
go but the BatchNorm, which is set so that, in eval mode, the model computes exactly what the
ONNX file does (a test compares both on a real photo). The BatchNorm statistics are then
*recalibrated* on real backgrounds: with running mean/var equal to the conv outputs' real
statistics and the affine parameters compensating, eval output is unchanged, and in training
(batch statistics) the layers start where they were, instead of being renormalized from 0/1.

Licence: the result is derived from an AGPL-3.0 model, so a detector trained from it is too
(its card says so, ``derived_from``); ``--from-scratch`` trains without it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision.errors import ModelError

INIT_WEIGHTS = "nudenet-320n"
"""The weights-manifest entry the logo detector starts from (unless trained from scratch)."""

INIT_LICENSE = "AGPL-3.0"
"""Its licence, carried to every detector trained from it."""

ARCHITECTURE = "yolov8n.yaml"
"""ultralytics' bundled model config, the same as NudeNet's export."""

_FUSED = re.compile(r"^(?P<module>model\.\d+(?:\.[\w]+)*)\.conv\.(?P<kind>weight|bias)$")
"""A fused Conv+BN tensor: ``<module path>.conv.weight`` / ``.conv.bias``."""
_PLAIN = re.compile(r"^(?P<module>model\.\d+(?:\.[\w]+)*)\.(?P<kind>weight|bias)$")
"""A plain convolution's tensor (the head's last layers): ``<path>.weight`` / ``.bias``."""


@dataclass(frozen=True)
class Transfer:
    """What a weight transfer did: tensors copied, and those left at their initialisation."""

    copied: tuple[str, ...]
    skipped: tuple[str, ...]
    """Names whose shape differs (the class head's last layer: other classes)."""

    @property
    def summary(self) -> str:
        return f"{len(self.copied)} tensors from {INIT_WEIGHTS}, {len(self.skipped)} fresh"


def onnx_tensors(path: Path) -> dict[str, np.ndarray]:
    """The named initializers (weights) of an ONNX file, as arrays."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise ModelError(
            "a pretrained logo detector start needs the `onnx` package: "
            "pip install 'onscreen[train]' (or train with --from-scratch)"
        ) from e
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def transfer_fused_weights(model: Any, tensors: dict[str, np.ndarray]) -> Transfer:
    """Copy fused ultralytics-export tensors into an ultralytics ``DetectionModel``.

    For ``Conv`` blocks (conv without bias + BatchNorm): the fused weight goes to the conv and
    the fused bias to the BatchNorm, set to the identity plus that bias (mean 0, var 1, weight
    sqrt(1 + eps), bias b). For plain convolutions: weight and bias as they are. A tensor whose
    shape differs from the model's is skipped (reported); a model module the file lacks keeps
    its initialisation. Raises ModelError when nothing matches (not a YOLOv8 export).
    """
    import torch

    modules = dict(model.named_modules())
    copied: list[str] = []
    skipped: list[str] = []
    with torch.no_grad():
        for name, array in tensors.items():
            fused, plain = _FUSED.match(name), _PLAIN.match(name)
            if fused and hasattr(modules.get(fused["module"]), "bn"):
                block = modules[fused["module"]]
                target = block.conv.weight if fused["kind"] == "weight" else block.bn.bias
            elif plain and isinstance(modules.get(plain["module"]), torch.nn.Conv2d):
                conv = modules[plain["module"]]
                target = conv.weight if plain["kind"] == "weight" else conv.bias
                if target is None:
                    skipped.append(name)
                    continue
            else:
                continue  # export constants (shapes, anchors): not weights
            if tuple(target.shape) != array.shape:
                skipped.append(name)
                continue
            target.copy_(torch.tensor(array))
            if fused and fused["kind"] == "bias":
                bn = modules[fused["module"]].bn
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))
            copied.append(name)
    if not copied:
        raise ModelError(
            "no tensor of the pretrained file fits yolov8n: it is not an ultralytics YOLOv8 export"
        )
    return Transfer(tuple(copied), tuple(skipped))


def recalibrate_batchnorm(model: Any, images: Sequence[np.ndarray], imgsz: int) -> int:
    """Set every BatchNorm's running statistics to its input's real statistics on ``images``
    (RGB uint8), compensating its affine parameters so that eval output does not change.

    BN computes ``(y - m) / sqrt(v + eps) * w + b``; with ``m, v`` the real mean/variance of
    ``y`` and ``w' = w * sqrt(v + eps) / sqrt(v0 + eps)``, ``b' = b + (m - m0) * w /
    sqrt(v0 + eps)`` the eval function is the same, while training's batch statistics (close
    to ``m, v``) no longer rescale the layer. Returns the number of layers recalibrated.
    """
    import cv2
    import torch

    if not images:
        return 0
    batch = np.stack(
        [cv2.resize(im, (imgsz, imgsz), interpolation=cv2.INTER_AREA) for im in images]
    )
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
    stats: dict[torch.nn.BatchNorm2d, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(bn: torch.nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
        y = inputs[0].detach()
        stats[bn] = (y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False))

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    hooks = [bn.register_forward_hook(record) for bn in bns]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    with torch.no_grad():
        for bn, (mean, var) in stats.items():
            m0, v0 = bn.running_mean, bn.running_var
            assert m0 is not None and v0 is not None  # track_running_stats, as in YOLO
            scale = bn.weight / torch.sqrt(v0 + bn.eps)
            bn.bias.add_((mean - m0) * scale)
            bn.weight.mul_(torch.sqrt(var + bn.eps) / torch.sqrt(v0 + bn.eps))
            m0.copy_(mean)
            v0.copy_(var)
    return len(stats)


def pretrained_checkpoint(
    onnx_path: Path,
    classes: Sequence[str],
    out: Path,
    *,
    calibration_images: Sequence[np.ndarray] = (),
    imgsz: int = 320,
) -> Transfer:
    """Write an ultralytics checkpoint (``{"model": DetectionModel}``) of yolov8n for
    ``classes``, started from the fused weights in ``onnx_path``; training takes it as its
    ``pretrained`` argument. Returns what was transferred."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(ARCHITECTURE, nc=len(classes), verbose=False)
    transfer = transfer_fused_weights(model, onnx_tensors(onnx_path))
    recalibrate_batchnorm(model, calibration_images, imgsz)
    model.names = dict(enumerate(classes))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {}, "date": None, "version": None}, out)
    return transfer
