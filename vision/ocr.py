"""On-screen text (OCR): PP-OCRv4 text detection + recognition, ONNX models on onnxruntime.

The models are PaddleOCR's, as shipped in the ``rapidocr-onnxruntime`` wheel (Apache-2.0;
``weights/manifest.toml``: ``ppocr-v4-det``, ``ppocr-v4-rec``, ``ppocr-mobile-v2-cls``). The
pre- and post-processing is ours (numpy + headless OpenCV): rapidocr itself depends on GUI
``opencv-python``, which clashes with the headless build, so only its model files are used.
Constants follow rapidocr 1.4.4's ``config.yaml`` unless a comment says why not.

One pass over a frame:

1. **detect** (DB, differentiable binarization): the frame, resized so its longer side is at
   most ``det_max_side`` pixels (both sides multiples of 32, the network's stride) -> a text
   probability map -> binarized at ``DB_THRESHOLD`` and dilated 2x2 -> one minimum-area
   rectangle per connected region, kept when the mean probability inside the region is at
   least ``DB_BOX_THRESHOLD`` -> grown by DB's "unclip" distance (area x ``DB_UNCLIP_RATIO`` /
   perimeter), because DB is trained to predict shrunk text kernels.
2. **crop** each rectangle out of the full-resolution frame, rectified by a perspective warp
   (crops at least 1.5x taller than wide are turned 90°: vertical text).
3. **direction** (optional): crops the classifier calls upside down (p >= ``CLS_THRESHOLD``)
   are turned 180°.
4. **recognize** (SVTR-LCNet + CTC): crops resized to height ``REC_HEIGHT``, batched; greedy
   CTC decoding with the 6623-character dictionary stored in the model's own metadata (key
   ``character``). A line's score is the mean probability of its decoded characters; lines
   under ``min_score`` are dropped.

Colour order: our images are RGB; the PaddleOCR models were trained on OpenCV's BGR, so the
channel axis is reversed when a tensor is built (never on the full frame).

Batching never changes a result: frames whose detector input has the same shape run as one
batch (a video's keyframes all do), and recognition crops are padded to a width *bucket* that
depends on the crop alone, so ``read_many(images)`` equals ``[read(im) for im in images]``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.errors import ModelError
from vision.types import TextRead, check_rgb_batch, check_rgb_image

log = logging.getLogger(__name__)

DET_WEIGHTS = "ppocr-v4-det"
"""Manifest name of the text detector."""
REC_WEIGHTS = "ppocr-v4-rec"
"""Manifest name of the text-line recognizer."""
CLS_WEIGHTS = "ppocr-mobile-v2-cls"
"""Manifest name of the text-direction (0°/180°) classifier."""

DEFAULT_DET_MAX_SIDE = 960
"""Longer side, in pixels, the detector sees. A 1280x720 frame runs at 960x544: text lines
16 px high in the frame are still found."""
MAX_DET_UPSCALE = 2.0
"""Smaller frames are scaled up towards ``det_max_side``, by at most this factor: the text of
a small image is few pixels high, and DB misses lines under ~10 px (skimage's page.png, 384 px
wide, loses two of its seven lines at 1x and none at 2x)."""
MIN_DET_MAX_SIDE, MAX_DET_MAX_SIDE = 64, 2048
"""Bounds of ``det_max_side`` in pixels."""
DET_STRIDE = 32
"""The detector's input sides must be multiples of this many pixels."""
DET_BATCH = 8
"""Frames per detector run on a GPU (same input shape only): bounds memory at ~8 x 3 x 544 x 960
floats. On a CPU frames run one at a time: measured there, a batch of 8 ran at 3.3-3.9 frames/s
against 4.2-4.9 one by one (bench/bench_ocr.py showed 2.1 vs 4.3): onnxruntime's CPU kernels
gain nothing from the batch dimension and the bigger tensors cost cache."""
DB_THRESHOLD = 0.3
"""Text probability (0..1) above which a pixel of the detector's map is text."""
DB_BOX_THRESHOLD = 0.5
"""Mean text probability (0..1) a region needs to become a text line."""
DB_UNCLIP_RATIO = 1.6
"""How far a region's rectangle is grown back out: distance = area x ratio / perimeter."""
DB_MIN_SIDE_PX = 3
"""Regions whose rectangle is thinner than this, in detector-map pixels, are noise."""
MAX_CANDIDATES = 1000
"""Connected regions of the probability map looked at per frame, at most."""
MAX_TEXT_LINES = 64
"""Text lines recognized per frame, at most (the most confident detections win)."""
MIN_CROP_SIDE_PX = 4
"""A line box narrower or lower than this, in frame pixels, is not cropped."""
VERTICAL_RATIO = 1.5
"""A crop at least this many times taller than wide is vertical text: turned 90° first."""

REC_HEIGHT = 48
"""Height, in pixels, every crop is resized to for the recognizer (its training height)."""
REC_MIN_WIDTH = 320
"""Narrowest recognizer input, in pixels (rapidocr's 48x320 base shape); shorter crops are
padded to it."""
REC_WIDTH_STEP = 160
"""Recognizer inputs wider than ``REC_MIN_WIDTH`` are padded up to a multiple of this many
pixels: a crop's tensor depends on the crop alone, and similar crops share a batch."""
MAX_REC_WIDTH = 3200
"""Widest recognizer input, in pixels (a 66:1 line); a longer line is squeezed into it."""
REC_BATCH = 16
"""Crops per recognizer run, at most."""
CLS_SHAPE = (48, 192)
"""Direction classifier input (height, width) in pixels."""
CLS_THRESHOLD = 0.9
"""Probability (0..1) of "upside down" above which a crop is turned 180°."""
CLS_BATCH = 32
"""Crops per direction-classifier run, at most."""
DEFAULT_MIN_SCORE = 0.5
"""Lines whose mean character probability is below this (0..1) are dropped."""


@dataclass(frozen=True)
class _Line:
    """One detected text line: its corners (tl, tr, br, bl) in frame pixels, float32 (4, 2),
    and the detector's mean probability inside it."""

    quad: np.ndarray
    score: float


def _session(path: Path, what: str, providers: list[str], threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # onnxruntime's own warnings would go to stderr per session
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads sleep instead of spinning: OCR shares the cores with CLIP and the
    # detectors, and spinning threads slowed every model down on a shared 2-core machine.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"OCR {what} model {path} cannot be loaded ({type(exc).__name__}: {first[:200]}); "
            "the file may be truncated or not an ONNX model"
        ) from None


def _providers(device: str) -> tuple[list[str], str]:
    """onnxruntime providers for a ``pick_device`` preference, and a name for logs."""
    import onnxruntime as ort

    from vision.device import pick_device

    choice = pick_device(device)
    if not choice.is_cuda:
        return ["CPUExecutionProvider"], "cpu"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        index = choice.device.index or 0
        return [
            f"CUDAExecutionProvider:{index}",
            "CPUExecutionProvider",
        ], f"cuda:{index}"
    msg = (
        "OCR: CUDA is available but onnxruntime has no CUDA provider "
        "(install the `gpu` extra: onnxruntime-gpu)"
    )
    if device.strip().lower() != "auto":
        raise ModelError(msg + "; or use --device cpu")
    log.warning("%s; running on the CPU", msg)
    return ["CPUExecutionProvider"], "cpu (onnxruntime CPU build)"


def _split_provider(providers: list[str]) -> list[Any]:
    out: list[Any] = []
    for p in providers:
        name, _, index = p.partition(":")
        out.append((name, {"device_id": int(index)}) if index else name)
    return out


def det_input_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(h, w)`` the detector runs at for a ``height`` x ``width`` frame: scaled so the longer
    side is ``max_side`` (up by at most ``MAX_DET_UPSCALE``), each side rounded to a multiple
    of 32."""
    scale = min(MAX_DET_UPSCALE, max_side / max(height, width))

    def side(v: int) -> int:
        return max(DET_STRIDE, round(v * scale / DET_STRIDE) * DET_STRIDE)

    return side(height), side(width)


def _to_tensor(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 BGR in -1..1 (PaddleOCR's normalization)."""
    chw = rgb.transpose(2, 0, 1)[::-1].astype(np.float32)
    return chw * np.float32(1.0 / 127.5) - np.float32(1.0)


def _region_score(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean of ``prob`` inside the polygon ``corners`` (K, 2).

    Scored over the region's own contour (DB's "slow" mode), not its rectangle (rapidocr's
    "fast" default): a slanted or curved line of a photographed page fills its rectangle
    badly and scores ~0.5 by rectangle, ~0.9 by contour (skimage's page.png)."""
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _order_corners(pts: np.ndarray) -> np.ndarray:
    """Four points -> (tl, tr, br, bl): the two leftmost by y, then the two rightmost by y."""
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], np.float32)


def lines_from_probability(
    prob: np.ndarray, frame_hw: tuple[int, int], *, max_lines: int = MAX_TEXT_LINES
) -> list[_Line]:
    """DB post-processing: a (h, w) text probability map -> text lines in frame pixels.

    ``frame_hw`` is the (height, width) of the frame the map was computed for; the map's own
    size may differ (the detector ran on a resized copy). At most ``max_lines`` lines, the
    most confident first.
    """
    h, w = prob.shape
    fh, fw = frame_hw
    mask = cv2.dilate((prob > DB_THRESHOLD).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    scale = np.array([fw / w, fh / h], np.float32)
    lines: list[_Line] = []
    for contour in contours[:MAX_CANDIDATES]:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < DB_MIN_SIDE_PX:
            continue
        score = _region_score(prob, contour.reshape(-1, 2).astype(np.float32))
        if score < DB_BOX_THRESHOLD:
            continue
        # DB's unclip: offsetting a rectangle by d (round joins) and taking the minimum-area
        # rectangle of the result grows each side by 2d, so no polygon clipper is needed.
        d = rw * rh * DB_UNCLIP_RATIO / (2.0 * (rw + rh))
        grown = ((cx, cy), (rw + 2 * d, rh + 2 * d), angle)
        if min(rw, rh) + 2 * d < DB_MIN_SIDE_PX + 2:
            continue
        corners = cv2.boxPoints(grown) * scale
        corners[:, 0] = np.clip(np.round(corners[:, 0]), 0, fw - 1)
        corners[:, 1] = np.clip(np.round(corners[:, 1]), 0, fh - 1)
        quad = _order_corners(corners)
        if (
            np.linalg.norm(quad[0] - quad[1]) < MIN_CROP_SIDE_PX
            or np.linalg.norm(quad[0] - quad[3]) < MIN_CROP_SIDE_PX
        ):
            continue
        lines.append(_Line(quad, score))
    lines.sort(key=lambda line: line.score, reverse=True)
    return lines[:max_lines]


def reading_order(lines: Sequence[_Line]) -> list[_Line]:
    """Lines top to bottom, and left to right within a row (lines whose tops are closer than
    half the lower line's height share a row)."""
    out = sorted(lines, key=lambda line: (float(line.quad[0, 1]), float(line.quad[0, 0])))
    for i in range(1, len(out)):
        j = i
        while j > 0:
            a, b = out[j - 1].quad, out[j].quad
            same_row = abs(b[0, 1] - a[0, 1]) < 0.5 * min(_height(a), _height(b))
            if not (same_row and b[0, 0] < a[0, 0]):
                break
            out[j - 1], out[j] = out[j], out[j - 1]
            j -= 1
    return out


def _height(quad: np.ndarray) -> float:
    return float(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))


def crop_line(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The text line ``quad`` (tl, tr, br, bl) of ``image``, rectified to an upright
    rectangle by a perspective warp; vertical lines (1.5x taller than wide) turned 90°."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(_height(quad))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if crop.shape[0] >= VERTICAL_RATIO * crop.shape[1]:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def rec_width(height: int, width: int) -> tuple[int, int]:
    """``(resized, padded)`` recognizer widths in pixels of a ``height`` x ``width`` crop: the
    crop is resized to ``REC_HEIGHT`` high and ``resized`` wide (capped at ``MAX_REC_WIDTH``),
    then padded to ``padded``, its width bucket."""
    resized = max(1, min(MAX_REC_WIDTH, math.ceil(REC_HEIGHT * width / height)))
    if resized <= REC_MIN_WIDTH:
        return resized, REC_MIN_WIDTH
    return resized, min(MAX_REC_WIDTH, math.ceil(resized / REC_WIDTH_STEP) * REC_WIDTH_STEP)


def _resized_padded(crop: np.ndarray, height: int, resized: int, padded: int) -> np.ndarray:
    """A crop as a (3, height, padded) tensor: resized to (height, resized), zero-padded right
    (zero is mid-grey after normalization, as the models were trained)."""
    out = np.zeros((3, height, padded), np.float32)
    out[:, :, :resized] = _to_tensor(cv2.resize(crop, (resized, height)))
    return out


def ctc_greedy_decode(probs: np.ndarray, charset: Sequence[str]) -> list[tuple[str, float]]:
    """CTC best path of (N, T, C) softmax outputs -> ``(text, score)`` per row.

    Class 0 is CTC's blank; class i >= 1 is ``charset[i - 1]``. Repeats collapse, blanks go;
    ``score`` is the mean probability of the characters kept (0.0 for an empty line).
    """
    idx = probs.argmax(axis=2)
    best = probs.max(axis=2)
    out: list[tuple[str, float]] = []
    for row_idx, row_p in zip(idx, best, strict=True):
        keep = row_idx != 0
        keep[1:] &= row_idx[1:] != row_idx[:-1]
        chars = row_idx[keep]
        text = "".join(charset[i - 1] for i in chars)
        score = float(row_p[keep].mean()) if chars.size else 0.0
        out.append((text, score))
    return out


class TextReader:
    """PP-OCRv4 over frames: ``read_many(images) -> list[list[TextRead]]``.

    ``det``, ``rec`` and ``cls`` are the ONNX files (``cls`` None: no direction classifier,
    upside-down text is then misread). ``det_max_side`` bounds the detector's input (pixels);
    ``min_score`` (0..1) drops unsure lines; ``max_lines`` bounds the lines per frame;
    ``device`` is a ``pick_device`` preference (CUDA needs onnxruntime-gpu); ``threads`` the
    CPU threads per model run (0: onnxruntime's default, all cores).

    Construction loads and checks all models (a wrong or corrupt file is a start-up
    ModelError, never a first-frame failure). ``read_many`` is thread-safe.
    """

    def __init__(
        self,
        det: Path,
        rec: Path,
        cls: Path | None = None,
        *,
        det_max_side: int = DEFAULT_DET_MAX_SIDE,
        min_score: float = DEFAULT_MIN_SCORE,
        max_lines: int = MAX_TEXT_LINES,
        device: str = "auto",
        threads: int = 0,
    ) -> None:
        if not (MIN_DET_MAX_SIDE <= det_max_side <= MAX_DET_MAX_SIDE):
            raise ModelError(
                f"OCR det_max_side must be {MIN_DET_MAX_SIDE}..{MAX_DET_MAX_SIDE} pixels, "
                f"got {det_max_side}"
            )
        if not (0.0 <= min_score <= 1.0):
            raise ModelError(f"OCR min_score must be in 0..1, got {min_score}")
        if not (1 <= max_lines <= MAX_TEXT_LINES):
            raise ModelError(f"OCR max_lines must be 1..{MAX_TEXT_LINES}, got {max_lines}")
        if threads < 0:
            raise ModelError(f"OCR threads must be >= 0 (0: all cores), got {threads}")
        paths = {"detector": det, "recognizer": rec} | ({"classifier": cls} if cls else {})
        for what, path in paths.items():
            if not Path(path).is_file():
                raise ModelError(
                    f"OCR {what} model {path} not found: run `onscreen weights fetch "
                    f"{DET_WEIGHTS} {REC_WEIGHTS} {CLS_WEIGHTS}`"
                )
        self.det_max_side = int(det_max_side)
        self.min_score = float(min_score)
        self.max_lines = int(max_lines)
        providers, self.device_name = _providers(device)
        ort_providers = _split_provider(providers)
        self._det = _session(Path(det), "detector", ort_providers, threads)
        self._rec = _session(Path(rec), "recognizer", ort_providers, threads)
        self._cls = _session(Path(cls), "classifier", ort_providers, threads) if cls else None
        self.charset = self._check_models(Path(det), Path(rec), cls)

    def _check_models(self, det: Path, rec: Path, cls: Path | None) -> tuple[str, ...]:
        """Each file must be the model it is passed as: shapes, dictionary, one real run."""
        meta = self._rec.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelError(
                f"OCR recognizer {rec} has no 'character' dictionary in its metadata: "
                f"not a PP-OCR recognizer (expected {REC_WEIGHTS})"
            )
        # Index 0 is CTC's blank, then the dictionary, then a space (PaddleOCR's layout).
        charset = (*meta["character"].splitlines(), " ")
        try:
            prob = self._det.run(None, {self._det.get_inputs()[0].name: _blank((1, 3, 64, 64))})
            rec_out = self._run_rec([_blank((3, REC_HEIGHT, REC_MIN_WIDTH))])
            cls_out = self._run_cls([_blank((3, *CLS_SHAPE))]) if self._cls is not None else None
        except Exception as exc:
            raise ModelError(
                f"OCR models {det.name}, {rec.name}: a test run failed "
                f"({type(exc).__name__}: {str(exc).strip()[:200]}); wrong files?"
            ) from None
        if prob[0].shape != (1, 1, 64, 64):
            raise ModelError(
                f"OCR detector {det} is not a DB text detector: a (1, 3, 64, 64) input gave "
                f"{prob[0].shape}, expected (1, 1, 64, 64)"
            )
        if rec_out.ndim != 3 or rec_out.shape[2] != len(charset) + 1:
            raise ModelError(
                f"OCR recognizer {rec}: output {rec_out.shape} does not fit its "
                f"{len(charset) - 1}-character dictionary (expected (N, T, {len(charset) + 1}))"
            )
        if cls_out is not None and cls_out.shape != (1, 2):
            raise ModelError(
                f"OCR classifier {cls}: output {cls_out.shape}, expected (1, 2) (0° and 180°)"
            )
        return charset

    # ---------------------------------------------------------------- model runs

    def _run_rec(self, tensors: Sequence[np.ndarray]) -> np.ndarray:
        out = self._rec.run(None, {self._rec.get_inputs()[0].name: np.stack(tensors)})
        return np.asarray(out[0])

    def _run_cls(self, tensors: Sequence[np.ndarray]) -> np.ndarray:
        assert self._cls is not None
        out = self._cls.run(None, {self._cls.get_inputs()[0].name: np.stack(tensors)})
        return np.asarray(out[0])

    def _detect(self, images: Sequence[np.ndarray]) -> list[list[_Line]]:
        """Text lines of each image: images of one detector input shape run together."""
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, im in enumerate(images):
            groups[det_input_size(im.shape[0], im.shape[1], self.det_max_side)].append(i)
        out: list[list[_Line]] = [[] for _ in images]
        name = self._det.get_inputs()[0].name
        for (h, w), members in groups.items():
            step = DET_BATCH if self.device_name.startswith("cuda") else 1
            for start in range(0, len(members), step):
                chunk = members[start : start + step]
                batch = np.stack(
                    [
                        _to_tensor(cv2.resize(images[i], (w, h), interpolation=cv2.INTER_LINEAR))
                        for i in chunk
                    ]
                )
                probs = self._det.run(None, {name: batch})[0]
                for i, prob in zip(chunk, probs, strict=True):
                    out[i] = reading_order(
                        lines_from_probability(
                            prob[0], images[i].shape[:2], max_lines=self.max_lines
                        )
                    )
        return out

    def _upright(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Crops the direction classifier calls upside down, turned 180°."""
        if self._cls is None or not crops:
            return crops
        ch, cw = CLS_SHAPE
        out = list(crops)
        for start in range(0, len(crops), CLS_BATCH):
            tensors = [
                _resized_padded(c, ch, min(cw, math.ceil(ch * c.shape[1] / c.shape[0])), cw)
                for c in crops[start : start + CLS_BATCH]
            ]
            probs = self._run_cls(tensors)
            for k, p in enumerate(probs):
                if int(p.argmax()) == 1 and float(p[1]) >= CLS_THRESHOLD:
                    out[start + k] = np.ascontiguousarray(crops[start + k][::-1, ::-1])
        return out

    def _recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """``(text, score)`` per crop; crops of one width bucket run together."""
        buckets: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, c in enumerate(crops):
            resized, padded = rec_width(c.shape[0], c.shape[1])
            buckets[padded].append((i, resized))
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for padded, members in sorted(buckets.items()):
            for start in range(0, len(members), REC_BATCH):
                chunk = members[start : start + REC_BATCH]
                tensors = [
                    _resized_padded(crops[i], REC_HEIGHT, resized, padded) for i, resized in chunk
                ]
                decoded = ctc_greedy_decode(self._run_rec(tensors), self.charset)
                for (i, _), res in zip(chunk, decoded, strict=True):
                    out[i] = res
        return out

    # ---------------------------------------------------------------- public

    def read(self, image: np.ndarray) -> list[TextRead]:
        """The text lines of one (H, W, 3) uint8 RGB image (see ``read_many``)."""
        return self.read_many([check_rgb_image(image)])[0]

    def read_many(self, images: Sequence[np.ndarray]) -> list[list[TextRead]]:
        """Text lines of each (H, W, 3) uint8 RGB image, in reading order.

        One list per image, in input order; each TextRead holds the text as read (stripped),
        its score (0..1, mean character probability, at least ``min_score``) and the line's
        normalized xyxy box (the axis-aligned bounds of its rotated rectangle). Raises
        ValueError naming the bad image for a malformed one.
        """
        checked = check_rgb_batch(images)
        if not checked:
            return []
        lines = self._detect(checked)
        crops: list[np.ndarray] = []
        owners: list[tuple[int, _Line]] = []
        for i, (im, found) in enumerate(zip(checked, lines, strict=True)):
            for line in found:
                crops.append(crop_line(im, line.quad))
                owners.append((i, line))
        reads = self._recognize(self._upright(crops))
        out: list[list[TextRead]] = [[] for _ in checked]
        for (i, line), (text, score) in zip(owners, reads, strict=True):
            text = text.strip()
            if not text or score < self.min_score:
                continue
            h, w = checked[i].shape[:2]
            (x0, y0), (x1, y1) = line.quad.min(axis=0), line.quad.max(axis=0)
            box = (float(x0) / w, float(y0) / h, float(x1) / w, float(y1) / h)
            out[i].append(TextRead(text, min(1.0, score), box))
        return out

    def __repr__(self) -> str:
        return (
            f"TextReader(det_max_side={self.det_max_side}, min_score={self.min_score}, "
            f"angle_cls={self._cls is not None}, device={self.device_name!r})"
        )


def _blank(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, np.float32)


def text_reader(
    *,
    angle_cls: bool = True,
    det_max_side: int = DEFAULT_DET_MAX_SIDE,
    min_score: float = DEFAULT_MIN_SCORE,
    max_lines: int = MAX_TEXT_LINES,
    device: str = "auto",
    threads: int = 0,
) -> TextReader:
    """The PP-OCRv4 TextReader from the manifest's verified files (never downloads).

    Raises WeightsError naming ``onscreen weights fetch ...`` when a file is missing or fails
    its sha256; ``angle_cls`` False leaves the direction classifier out (and unfetched).
    """
    from vision.weights import resolve

    return TextReader(
        resolve(DET_WEIGHTS),
        resolve(REC_WEIGHTS),
        resolve(CLS_WEIGHTS) if angle_cls else None,
        det_max_side=det_max_side,
        min_score=min_score,
        max_lines=max_lines,
        device=device,
        threads=threads,
    )


__all__ = [
    "CLS_WEIGHTS",
    "DEFAULT_DET_MAX_SIDE",
    "DEFAULT_MIN_SCORE",
    "DET_WEIGHTS",
    "MAX_TEXT_LINES",
    "REC_WEIGHTS",
    "TextReader",
    "ctc_greedy_decode",
    "det_input_size",
    "text_reader",
]
