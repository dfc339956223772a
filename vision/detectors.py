"""Box detectors: any ultralytics YOLO weights file (.pt or .onnx) -> ``Detection`` lists.

``Detector`` wraps ``ultralytics.YOLO(path, task="detect")`` and owns the conversions the rest
of onscreen must not think about: our frames are RGB, ultralytics reads numpy arrays as BGR
(OpenCV's order), so channels are flipped here; boxes come back normalized ``xyxy`` (0..1 of
the frame's width/height, origin top-left) whatever size the model ran at; class indices are
mapped to our label names and a ``DetectionKind`` (face, safety, logo, object).

One ``predict`` call per batch (up to ``MAX_BATCH`` images): on a GPU the batch runs as one
forward pass. For ONNX exports whose graph has a dynamic batch axis but whose metadata does
not say so (NudeNet's), ultralytics would run them one image at a time; we tell it the truth.

Offline by construction: before ultralytics is first imported we set ``YOLO_OFFLINE=1``
(no hub, no analytics: its event sender needs ``ONLINE``), ``YOLO_AUTOINSTALL=false`` and
``ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS=1`` (its ONNX loader calls ``check_requirements("onnx")``
and would otherwise try ``pip install onnx``), ``YOLO_VERBOSE=false`` (its logger writes to
stdout, which ``--json`` output owns) and ``ULTRALYTICS_SAFE_LOAD=1`` (``.pt`` files load with
``weights_only`` and an allow-list, never arbitrary pickles). A weights path that does not
exist is refused here: ultralytics would otherwise try to download a file of that name.

``face_safety_detector`` builds the NudeNet 320n detector (``weights/manifest.toml``:
``nudenet-320n``): faces for targeting, exposed-nudity boxes for brand safety.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vision.device import pick_device
from vision.errors import ModelError
from vision.safety_classes import NUDITY_DETECTOR_LABELS
from vision.types import Detection, DetectionKind, check_rgb_batch

log = logging.getLogger(__name__)

_ULTRALYTICS_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS": "1",
    "YOLO_VERBOSE": "false",
    "ULTRALYTICS_SAFE_LOAD": "1",
}
"""Environment ultralytics reads at import (and some at call) time; see the module docstring."""

WEIGHTS_SUFFIXES = (".pt", ".onnx")
"""Weights formats accepted: ultralytics checkpoints and ONNX exports."""
DEFAULT_DETECTOR_CONF = 0.15
"""Lowest class score kept (0..1), the one default for every detector: low, so small faces
survive; rules filter by their own min_score (faces 0.4, nudity 0.45)."""
DEFAULT_IOU = 0.45
"""IoU (0..1) above which NMS merges two boxes of one class."""
DEFAULT_DETECTOR_IMGSZ = 480
"""Side in pixels of the square a detector's input is letterboxed into, the one default for
every detector (the pipeline, the benchmarks, a ``Detector`` built by hand). NudeNet was
trained at 320 (``NUDENET_TRAINED_IMGSZ``), but at 320 a 1280x720 frame's faces shrink below
what it finds (zidane.jpg: no face at 320, both at 480). 480 costs ~2.25x the compute of 320."""
MIN_IMGSZ, MAX_IMGSZ = 32, 2048
"""Bounds of ``imgsz`` in pixels (a multiple of 32, the YOLO stride)."""
MAX_BATCH = 32
"""Images per predict call: a larger ``detect`` input is split, bounding memory."""
MAX_DET = 300
"""Most boxes kept per image after NMS."""

NUDENET_CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
"""NudeNet 3.4's 18 classes in model order (its ``nudenet.py`` and the ONNX ``names``)."""
NUDITY_LABELS: tuple[str, ...] = NUDITY_DETECTOR_LABELS
"""Exposed-nudity classes: kind ``safety``, labels kept as NudeNet spells them (the labels
``vision.safety_classes`` maps to the ``nudity`` brand-safety category)."""
FACE_LABELS: Mapping[str, str] = {"FACE_FEMALE": "face_female", "FACE_MALE": "face_male"}
"""NudeNet face classes -> our face labels (kind ``face``)."""
FACE_SAFETY_WEIGHTS = "nudenet-320n"
"""Manifest name of the NudeNet weights."""
NUDENET_TRAINED_IMGSZ = 320
"""NudeNet 320n's training resolution (a fact about the model, not a default). Faces under
~1/8 of the frame's longer side are mostly missed at this size (measured: none of zidane.jpg's
two at conf 0.25); a larger ``imgsz`` finds more small faces at ~(imgsz/320)^2 the cost and
more false boxes, hence ``DEFAULT_DETECTOR_IMGSZ``."""


def _prepare_ultralytics_env() -> None:
    for key, value in _ULTRALYTICS_ENV.items():
        os.environ.setdefault(key, value)


def _import_yolo() -> Any:
    _prepare_ultralytics_env()
    try:
        import ultralytics.utils.checks as checks
        from ultralytics import YOLO
    except ImportError as exc:
        raise ModelError(
            f"the ultralytics package cannot be imported ({exc}); install onscreen's "
            "dependencies (`pip install -e .`)"
        ) from None
    if getattr(checks, "AUTOINSTALL", False):
        # ultralytics was imported before us with auto-install on: turn it off for this process.
        log.warning("ultralytics was imported with YOLO_AUTOINSTALL on; turning it off")
        checks.AUTOINSTALL = False
    # Its logger writes INFO and WARNING lines to stdout (which `--json` output owns) when it
    # was imported before YOLO_VERBOSE=false could be set; keep only errors unless -vv.
    ul_log = logging.getLogger("ultralytics")
    if not log.isEnabledFor(logging.DEBUG) and ul_log.level < logging.ERROR:
        ul_log.setLevel(logging.ERROR)
    return YOLO


def kind_by_label(mapping: Mapping[str, DetectionKind], default: DetectionKind = "object"):
    """A ``kind_of`` callable from a label -> kind table (labels not in it get ``default``)."""

    def kind_of(label: str) -> DetectionKind:
        return mapping.get(label, default)

    return kind_of


def _all_objects(_label: str) -> DetectionKind:
    return "object"


class Detector:
    """An ultralytics YOLO detector on local weights, batched, returning our ``Detection``.

    ``labels`` maps the model's class index to our label (None: the model's own names; every
    class of the model must be covered); ``kind_of(label)`` gives each label's kind. ``conf``
    and ``iou`` are 0..1, ``imgsz`` a multiple of 32 in pixels, ``device`` a ``pick_device``
    preference (``auto``: CUDA with fp16 when present, CPU otherwise). ``fetch_hint`` is the
    command printed when the weights are missing or broken.

    Construction loads the model and runs it once on a blank frame, so missing or corrupt
    weights are a start-up ``ModelError``, never a first-request failure. ``detect`` is
    thread-safe (calls are serialized: ultralytics' predictor keeps per-call state).
    """

    def __init__(
        self,
        weights: Path,
        *,
        labels: Mapping[int, str] | None = None,
        kind_of: Callable[[str], DetectionKind] = _all_objects,
        conf: float = DEFAULT_DETECTOR_CONF,
        iou: float = DEFAULT_IOU,
        imgsz: int = DEFAULT_DETECTOR_IMGSZ,
        device: str = "auto",
        max_det: int = MAX_DET,
        fetch_hint: str | None = None,
    ) -> None:
        weights = Path(weights)
        hint = fetch_hint or "fetch it (see weights/manifest.toml) and pass its path"
        if not (0.0 < conf <= 1.0) or not (0.0 < iou <= 1.0):
            raise ModelError(
                f"detector {weights.name}: conf and iou must be in (0, 1], got {conf}, {iou}"
            )
        if not (MIN_IMGSZ <= imgsz <= MAX_IMGSZ) or imgsz % 32:
            raise ModelError(
                f"detector {weights.name}: imgsz must be a multiple of 32 in "
                f"{MIN_IMGSZ}..{MAX_IMGSZ} pixels, got {imgsz}"
            )
        if not (1 <= max_det <= 10_000):
            raise ModelError(f"detector {weights.name}: max_det must be 1..10000, got {max_det}")
        if weights.suffix.lower() not in WEIGHTS_SUFFIXES:
            raise ModelError(
                f"detector weights {weights}: unsupported format {weights.suffix!r}; "
                f"use one of {', '.join(WEIGHTS_SUFFIXES)}"
            )
        if not weights.is_file():
            raise ModelError(f"detector weights {weights} not found: {hint}")
        self.weights = weights.resolve()
        self.conf = float(conf)
        self.iou = float(iou)
        self.imgsz = int(imgsz)
        self.max_det = int(max_det)
        self._kind_of = kind_of
        self._lock = threading.Lock()
        choice = pick_device(device)
        self.device_name = choice.name
        self._device = str(choice.device) if choice.is_cuda else "cpu"
        self._half = choice.is_cuda

        YOLO = _import_yolo()
        try:
            self._model = YOLO(str(self.weights), task="detect")
            # First predict builds the backend (ONNX session / torch module) and catches
            # corrupt files now rather than on the first frame.
            self._predict([np.zeros((64, 64, 3), np.uint8)])
        except ModelError:
            raise
        except Exception as exc:  # ultralytics raises many types for a bad file
            raise ModelError(
                f"detector weights {self.weights} cannot be loaded "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}); "
                f"the file may be truncated or not a YOLO detector: {hint}"
            ) from None
        self._enable_dynamic_batch()
        self._check_onnx_provider(device)
        names: Mapping[int, str] = dict(self._model.names)
        self.model_names: dict[int, str] = {int(k): str(v) for k, v in names.items()}
        if labels is None:
            self.labels = dict(self.model_names)
        else:
            uncovered = sorted(set(self.model_names) - set(labels))
            if uncovered:
                raise ModelError(
                    f"detector {self.weights.name}: labels cover no name for class index(es) "
                    f"{uncovered} of the model's {len(self.model_names)} classes"
                )
            self.labels = {int(k): str(v) for k, v in labels.items()}

    def _enable_dynamic_batch(self) -> None:
        """Let a dynamic-batch ONNX graph take a whole batch in one run.

        ultralytics decides "dynamic" from export metadata; third-party exports without it
        (NudeNet's) are then run one image at a time although the graph's batch axis is
        symbolic. Only ONNX sessions whose input batch axis really is symbolic are changed.
        """
        backend = getattr(getattr(self._model, "predictor", None), "model", None)
        inner = getattr(backend, "backend", None)
        session = getattr(inner, "session", None)
        metadata = getattr(inner, "metadata", None)
        if inner is None or session is None or not isinstance(metadata, dict):
            return
        shape = session.get_inputs()[0].shape
        if len(shape) == 4 and all(isinstance(d, str) for d in (shape[0], shape[2], shape[3])):
            metadata["dynamic"] = True
            inner.dynamic = True

    def _check_onnx_provider(self, preference: str) -> None:
        """ONNX on a CUDA machine needs onnxruntime-gpu; the CPU build silently runs on CPU.

        An explicit ``cuda`` preference makes that a start-up error (DESIGN: never a silent
        fall back); ``auto`` logs a warning and reports the CPU in ``device_name``.
        """
        session = getattr(
            getattr(getattr(self._model.predictor, "model", None), "backend", None), "session", None
        )
        if session is None or not self._half:
            return
        if "CUDAExecutionProvider" in session.get_providers():
            return
        msg = (
            f"detector {self.weights.name}: CUDA is available but onnxruntime has no CUDA "
            "provider (install the `gpu` extra: onnxruntime-gpu)"
        )
        if preference.strip().lower() != "auto":
            raise ModelError(msg + "; or use --device cpu")
        log.warning("%s; running on the CPU", msg)
        self.device_name = "cpu (onnxruntime CPU build)"

    def _predict(self, bgr: list[np.ndarray]) -> list[Any]:
        # rect=False: every image is letterboxed into the same imgsz square, so an image's
        # boxes do not depend on which other images (of other sizes) share its batch.
        precision = {"quantize": 16} if self._half else {}
        return self._model.predict(
            bgr,
            imgsz=self.imgsz,
            conf=self.conf,
            iou=self.iou,
            max_det=self.max_det,
            device=self._device,
            rect=False,
            verbose=False,
            **precision,
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Boxes for each image: ``images`` are (H, W, 3) uint8 RGB of any sizes.

        Returns one list per image, in input order, of Detections sorted by score (highest
        first) with normalized xyxy boxes. Raises ValueError for a malformed image.
        """
        checked = check_rgb_batch(images)
        out: list[list[Detection]] = []
        for start in range(0, len(checked), MAX_BATCH):
            chunk = checked[start : start + MAX_BATCH]
            bgr = [np.ascontiguousarray(im[..., ::-1]) for im in chunk]
            with self._lock:
                results = self._predict(bgr)
            out.extend(self._convert(r) for r in results)
        return out

    def _convert(self, result: Any) -> list[Detection]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxyn = boxes.xyxyn.detach().cpu().numpy().astype(np.float64)
        scores = boxes.conf.detach().cpu().numpy().astype(np.float64)
        classes = boxes.cls.detach().cpu().numpy().astype(np.int64)
        dets = []
        for box, score, cls in zip(xyxyn, scores, classes, strict=True):
            label = self.labels[int(cls)]
            x0, y0, x1, y1 = (float(v) for v in np.clip(box, 0.0, 1.0))
            dets.append(Detection(self._kind_of(label), label, float(score), (x0, y0, x1, y1)))
        dets.sort(key=lambda d: d.score, reverse=True)
        return dets

    def __repr__(self) -> str:
        return (
            f"Detector({self.weights.name}, imgsz={self.imgsz}, conf={self.conf}, "
            f"iou={self.iou}, device={self.device_name!r})"
        )


def _nudenet_kind(label: str) -> DetectionKind:
    if label in FACE_LABELS.values():
        return "face"
    if label in NUDITY_LABELS:
        return "safety"
    return "object"


def face_safety_detector(
    weights_path: Path | None = None,
    *,
    conf: float = DEFAULT_DETECTOR_CONF,
    iou: float = DEFAULT_IOU,
    imgsz: int = DEFAULT_DETECTOR_IMGSZ,
    device: str = "auto",
) -> Detector:
    """The NudeNet 320n detector: faces (kind ``face``, labels ``face_female``/``face_male``),
    exposed nudity (kind ``safety``, labels in ``NUDITY_LABELS``), other body classes
    (kind ``object``, NudeNet's names).

    ``weights_path`` None resolves ``nudenet-320n`` from the manifest (never downloads;
    WeightsError naming ``onscreen weights fetch nudenet-320n`` when it is missing). The
    model's own class names must equal ``NUDENET_CLASSES``: any other file is refused.
    """
    hint = f"run `onscreen weights fetch {FACE_SAFETY_WEIGHTS}`"
    if weights_path is None:
        from vision.weights import resolve

        weights_path = resolve(FACE_SAFETY_WEIGHTS)
    labels = {i: FACE_LABELS.get(name, name) for i, name in enumerate(NUDENET_CLASSES)}
    det = Detector(
        Path(weights_path),
        labels=labels,
        kind_of=_nudenet_kind,
        conf=conf,
        iou=iou,
        imgsz=imgsz,
        device=device,
        fetch_hint=hint,
    )
    got = tuple(det.model_names[i] for i in sorted(det.model_names))
    if got != NUDENET_CLASSES:
        raise ModelError(
            f"{weights_path} is not the NudeNet 320n detector: its classes are {list(got)[:6]}... "
            f"({len(got)} in all), expected NudeNet's {len(NUDENET_CLASSES)}; {hint}"
        )
    return det


__all__ = [
    "DEFAULT_DETECTOR_CONF",
    "DEFAULT_DETECTOR_IMGSZ",
    "DEFAULT_IOU",
    "FACE_LABELS",
    "FACE_SAFETY_WEIGHTS",
    "MAX_BATCH",
    "NUDENET_CLASSES",
    "NUDENET_TRAINED_IMGSZ",
    "NUDITY_LABELS",
    "Detector",
    "face_safety_detector",
    "kind_by_label",
]
