"""vision.detectors with the real NudeNet 320n model on real photos (CPU)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fetched_weights, read_rgb
from vision.detectors import (
    DEFAULT_DETECTOR_CONF,
    DEFAULT_DETECTOR_IMGSZ,
    NUDENET_CLASSES,
    NUDENET_TRAINED_IMGSZ,
    NUDITY_LABELS,
    Detector,
    _nudenet_kind,
    face_safety_detector,
    kind_by_label,
)
from vision.errors import ModelError
from vision.types import box_area

FETCH_HINT = "onscreen weights fetch nudenet-320n"


@pytest.fixture(scope="module")
def nudenet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The verified weights: from the weights dir (`make weights`), else fetched from PyPI."""
    return fetched_weights("nudenet-320n", tmp_path_factory)


@pytest.fixture(scope="module")
def detector(nudenet_path: Path) -> Detector:
    """The model at its trained size: what it finds there is a property of the weights."""
    return face_safety_detector(nudenet_path, device="cpu", imgsz=NUDENET_TRAINED_IMGSZ)


@pytest.fixture(scope="module")
def photos(real_images: dict[str, Path]) -> dict[str, np.ndarray]:
    import skimage

    rocket = Path(skimage.__file__).parent / "data" / "rocket.jpg"
    out = {k: read_rgb(v) for k, v in real_images.items()}
    out["rocket"] = read_rgb(rocket)
    return out


def _faces(dets):
    return [d for d in dets if d.kind == "face"]


def test_labels_kinds_and_model_classes(detector: Detector) -> None:
    assert detector.imgsz == NUDENET_TRAINED_IMGSZ == 320
    assert tuple(detector.model_names[i] for i in range(18)) == NUDENET_CLASSES
    assert set(NUDITY_LABELS) <= set(NUDENET_CLASSES)
    kinds = {name: _nudenet_kind(detector.labels[i]) for i, name in enumerate(NUDENET_CLASSES)}
    assert {n for n, k in kinds.items() if k == "face"} == {"FACE_FEMALE", "FACE_MALE"}
    assert {n for n, k in kinds.items() if k == "safety"} == set(NUDITY_LABELS)
    assert detector.labels[1] == "face_female" and detector.labels[12] == "face_male"


def test_one_detector_image_size_and_conf_default_everywhere() -> None:
    """Once 320, 640 or 480 depending on the file (and conf 0.25 or 0.15): one default each."""
    import inspect

    from vision import pipeline
    from vision.detectors import Detector

    for fn in (Detector.__init__, face_safety_detector):
        assert inspect.signature(fn).parameters["imgsz"].default == DEFAULT_DETECTOR_IMGSZ
        assert inspect.signature(fn).parameters["conf"].default == DEFAULT_DETECTOR_CONF
    assert pipeline.PipelineConfig().detector_conf == DEFAULT_DETECTOR_CONF
    assert pipeline.DEFAULT_DETECTOR_IMGSZ == DEFAULT_DETECTOR_IMGSZ
    assert pipeline.PipelineConfig().detector_imgsz == DEFAULT_DETECTOR_IMGSZ


def test_one_face_on_grace_hopper_around_her_head(detector: Detector, photos) -> None:
    (dets,) = detector.detect([photos["grace_hopper"]])
    faces = _faces(dets)
    assert len(faces) == 1, dets
    face = faces[0]
    assert face.label == "face_female" and face.score > 0.5
    x0, y0, x1, y1 = face.box
    assert (y0 + y1) / 2 < 0.5, "the head is in the upper half of the portrait"
    assert 0.25 < (x0 + x1) / 2 < 0.75, "and roughly centred"
    assert 0.03 < box_area(face.box) < 0.35, "a head, not a speck nor the whole frame"


def test_zidane_two_faces_need_a_larger_input(nudenet_path: Path, photos) -> None:
    """Measured limit: at its native 320 the model misses both faces of this 1280x720 frame
    (heads ~1/10 of the width); at imgsz 480 it finds both, one of them weakly (~0.2)."""
    native = face_safety_detector(
        nudenet_path, device="cpu", imgsz=NUDENET_TRAINED_IMGSZ, conf=0.25
    )
    assert _faces(native.detect([photos["zidane"]])[0]) == []
    larger = face_safety_detector(nudenet_path, device="cpu", conf=0.15)  # default imgsz
    assert larger.imgsz == DEFAULT_DETECTOR_IMGSZ == 480
    faces = _faces(larger.detect([photos["zidane"]])[0])
    assert len(faces) == 2, faces
    centres = sorted(((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces)
    (lx, ly), (rx, ry) = centres
    assert 0.40 < lx < 0.56 and 0.4 < ly < 0.65, "Ancelotti, centre of the frame"
    assert 0.68 < rx < 0.86 and 0.15 < ry < 0.45, "Zidane, right of the frame"


@pytest.mark.parametrize("name", ["rocket", "coffee", "chelsea"])
def test_no_face_on_face_free_images(detector: Detector, photos, name: str) -> None:
    """No face a rule would count (faces need >= 0.4 by default; the cat draws a ~0.2 box at
    the detector's low default conf, which exists so small real faces survive)."""
    assert [f for f in _faces(detector.detect([photos[name]])[0]) if f.score >= 0.25] == []


def test_batch_equals_per_image_and_runs_once(detector: Detector, photos) -> None:
    names = ["bus", "zidane", "grace_hopper", "astronaut", "coffee", "rocket"]
    images = [photos[n] for n in names]
    single = [detector.detect([im])[0] for im in images]

    session = detector._model.predictor.model.backend.session
    calls = []
    real_run = session.run
    session.run = lambda *a, **k: calls.append(1) or real_run(*a, **k)
    try:
        batched = detector.detect(images)
    finally:
        session.run = real_run
    assert len(calls) == 1, "a batch is one ONNX run, not one per image"
    assert len(batched) == len(images)
    for name, a, b in zip(names, single, batched, strict=True):
        assert [(d.kind, d.label) for d in a] == [(d.kind, d.label) for d in b], name
        for da, db in zip(a, b, strict=True):
            assert da.score == pytest.approx(db.score, abs=1e-4)
            assert np.allclose(da.box, db.box, atol=1e-4)
    assert detector.detect([]) == []


def test_loads_and_runs_without_any_network(nudenet_path: Path, photos, monkeypatch) -> None:
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    det = face_safety_detector(nudenet_path, device="cpu")
    faces = _faces(det.detect([photos["astronaut"]])[0])
    assert attempts == [] and len(faces) == 1


@pytest.mark.parametrize(
    "make, exc, message",
    [
        (lambda tmp: face_safety_detector(tmp / "absent.onnx"), ModelError, FETCH_HINT),
        (lambda tmp: Detector(tmp / "model.tflite"), ModelError, "unsupported format '.tflite'"),
        (lambda tmp: Detector(tmp / "absent.pt"), ModelError, "absent.pt not found"),
        (lambda tmp: Detector(tmp / "m.onnx", imgsz=300), ModelError, "multiple of 32"),
        (lambda tmp: Detector(tmp / "m.onnx", conf=0), ModelError, "conf and iou must be"),
    ],
)
def test_bad_weights_or_settings(tmp_path: Path, make, exc, message: str) -> None:
    with pytest.raises(exc) as err:
        make(tmp_path)
    assert message in str(err.value)


def test_corrupt_weights_are_a_model_error_naming_file_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "nudenet-320n.onnx"
    bad.write_bytes(b"\x08\x07" + b"not a model" * 100)
    with pytest.raises(ModelError) as err:
        face_safety_detector(bad, device="cpu")
    assert str(bad) in str(err.value) and "cannot be loaded" in str(err.value)
    assert FETCH_HINT in str(err.value)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((10, 10), np.uint8), "(10, 10) uint8"),
        (np.zeros((10, 10, 3), np.float32), "float32"),
        (np.zeros((10, 10, 4), np.uint8), "(10, 10, 4)"),
        ("frame.jpg", "got str"),
    ],
)
def test_bad_images_are_refused(detector: Detector, image, message: str) -> None:
    with pytest.raises(ValueError, match=r"images\[1\] must be an \(H, W, 3\) uint8 RGB array"):
        detector.detect([np.zeros((8, 8, 3), np.uint8), image])
    with pytest.raises(ValueError) as err:
        detector.detect([image])
    assert message in str(err.value)


@pytest.mark.slow
def test_generic_pt_detector_with_label_table(tmp_path: Path) -> None:
    """Any ultralytics .pt loads (safe-load on), with its own names and a kind table."""
    from vision.detectors import _import_yolo

    yolo = _import_yolo()("yolov8n.yaml", task="detect")  # architecture only, random weights
    weights = tmp_path / "random-yolov8n.pt"
    yolo.save(str(weights))
    det = Detector(
        weights, kind_of=kind_by_label({"0": "face"}), imgsz=320, device="cpu", conf=0.01
    )
    # A model built from a yaml carries index names ("0".."79"); labels=None keeps them.
    assert det.labels == det.model_names and det.labels[0] == "0" and len(det.labels) == 80
    out = det.detect([np.zeros((90, 160, 3), np.uint8), np.full((40, 30, 3), 200, np.uint8)])
    assert len(out) == 2
    for dets in out:
        for d in dets:
            assert d.label in det.labels.values()
            assert d.kind == ("face" if d.label == "0" else "object")
    with pytest.raises(ModelError, match=r"labels cover no name for class index\(es\) \[2, 3"):
        Detector(weights, labels={0: "a", 1: "b"}, imgsz=320, device="cpu")
