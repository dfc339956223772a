"""Per-component analysis throughput, measured side by side in one run (machines are noisy).

    .venv/bin/python bench/bench_analyze.py [--frames 32] [--batch 1 16] [--device auto]

Frames are real photos (720p-ish, cover-cropped to 1280x720) with a pasted logo. CLIP runs with
random weights: the same architecture and compute as the real ViT-B-32, so the speed is real.
Prints frames/s per component and batch size, and the whole Analyzer's frames/s; OCR (when its
models are fetched) on the same frames, which hold no text but the logo's.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")

from examples.build_media import PHOTOS, RULES, brand_logo, cover, package_image, read_rgba  # noqa: E402


def frames(n: int) -> list[np.ndarray]:
    from vision.synthetic import paste_logo

    photos = [cover(read_rgba(package_image(*p))[..., :3], (1280, 720)) for p in PHOTOS.values()]
    logo = brand_logo("rival")
    out = []
    for i in range(n):
        img, _ = paste_logo(photos[i % len(photos)], logo, center=(0.7, 0.7), scale=0.25)
        out.append(img)
    return out


def rate(fn, images: list[np.ndarray], batch: int, repeat: int = 2) -> float:
    fn(images[:batch])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(0, len(images), batch):
            fn(images[i : i + batch])
        best = min(best, time.perf_counter() - t0)
    return len(images) / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import torch

    from vision.analyze import Analyzer
    from vision.clip_embedder import ClipEmbedder
    from vision.detectors import DEFAULT_DETECTOR_CONF, DEFAULT_DETECTOR_IMGSZ, face_safety_detector
    from vision.errors import WeightsError
    from vision.logo_matcher import LogoMatcher
    from vision.types import Frame
    from vision.weights import resolve

    images = frames(args.frames)
    clip = ClipEmbedder(random_weights=True, device=args.device)
    clip_int8 = None if clip.device.is_cuda else ClipEmbedder(random_weights=True, int8=True)
    det = face_safety_detector(
        resolve("nudenet-320n"),
        imgsz=DEFAULT_DETECTOR_IMGSZ,
        conf=DEFAULT_DETECTOR_CONF,
        device=args.device,
    )
    logos = LogoMatcher.from_brands_dir(RULES / "brands")
    analyzer = Analyzer(semantic=clip, detector=det, logos=logos)

    def bare_tower(ims: list[np.ndarray]) -> None:
        """The visual tower alone on a tensor preprocessed beforehand: the ceiling."""
        x = pre.get(len(ims))
        if x is None:
            x = pre[len(ims)] = clip.preprocess(ims)
        with torch.inference_mode():
            clip._model.encode_image(x)

    pre = {b: clip.preprocess(images[:b]) for b in args.batch}
    comps = {
        "clip visual tower alone (no preproc)": bare_tower,
        "clip ViT-B-32 (random init)": clip.embed_images,
        f"detector nudenet imgsz {DEFAULT_DETECTOR_IMGSZ}": det.detect,
        "logo matcher (2 brands)": logos.match_many,
        "analyzer (all three)": lambda ims: analyzer.analyze_batch(
            [Frame("b", 0.0, im) for im in ims]
        ),
    }
    if clip_int8 is not None:
        comps["clip ViT-B-32 int8 (--clip-int8)"] = clip_int8.embed_images
    try:
        from vision.lite import load_lite_model

        lite = load_lite_model(device=args.device)
        comps["lite (EfficientNet-Lite0 + ConSE)"] = lite.embed_images
    except (WeightsError, ImportError) as exc:
        print(f"lite skipped: {exc}")
    try:
        from vision.ocr import text_reader

        ocr = text_reader(device=args.device)
        comps[f"ocr PP-OCRv4 (det {ocr.det_max_side})"] = ocr.read_many
    except WeightsError as exc:
        print(f"ocr skipped: {exc}")
    print(
        f"analysis throughput, {len(images)} frames 1280x720, device {clip.device.name}, "
        f"torch {torch.__version__}, {os.cpu_count()} cpus, {platform.processor() or platform.machine()}"
    )
    print(
        f"command: .venv/bin/python bench/bench_analyze.py --frames {args.frames} --batch {' '.join(map(str, args.batch))}"
    )
    head = "".join(f"{'batch ' + str(b):>12}" for b in args.batch)
    print(f"{'component':36}{head}{'ratio':>10}   (frames/s)")
    for name, fn in comps.items():
        rates = [rate(fn, images, b) for b in args.batch]
        cells = "".join(f"{r:12.1f}" for r in rates)
        print(f"{name:36}{cells}{rates[-1] / rates[0]:10.2f}")
    if clip_int8 is not None:
        cos = (clip_int8.embed_images(images) * clip.embed_images(images)).sum(axis=1)
        print(
            f"clip int8 vs fp32 image-embedding cosine: min {cos.min():.5f}, mean {cos.mean():.5f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
