"""OCR accuracy and speed: PP-OCRv4 (``vision.ocr``) on 1280x720 frames with rendered text.

    .venv/bin/python bench/bench_ocr.py [--sizes 16 24 36 56] [--frames 6] [--det-max-side 960]

Each frame is a real photo (the demo's five, cover-cropped to 1280x720) with three ad-like
lines drawn on it at one font size (em height in pixels; capitals stand ~0.7 of it), in one
of four fonts (Pillow's built-in, DejaVu Sans, Sans Bold, Serif from matplotlib), in white
straight on the photo or on a dark or light plate. A read line belongs to the rendered line
that holds at least half of its box (a line read in two pieces is joined, left to right).
Reported per size:

- word acc: rendered words found, case-insensitive, punctuation kept, among the words of the
  read line (a dropped space between two words loses both);
- line exact: read lines equal to the rendered one, and the same ignoring spaces and case;
- junk: read lines that overlap no rendered line and no line read on the bare photo (the
  photos have text of their own: bus.jpg's signs).

Speed: frames/s of ``read_many`` at batch 1 and 8 on the frames with text, and on the bare
photos (detector only, nothing to recognize). The machine is shared: compare ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.build_media import PHOTOS, cover, package_image, read_rgba  # noqa: E402

PHRASES = [
    "Winter tyres 40% off",
    "ACME Coffee",
    "Grand opening today",
    "Free delivery on all orders",
    "Call 0800 123 456",
    "Fresh roasted beans",
    "Book your flight now",
    "New season collection",
    "Save up to 50%",
    "Open Sunday 10am to 4pm",
    "Organic pet food",
    "www.example.com",
    "Limited edition",
    "Buy one get one free",
    "Summer sale ends Monday",
    "Family tickets from 25 EUR",
]
"""Ad-like lines: words, digits, prices, punctuation."""
PLATES = [None, (20, 20, 20), (240, 240, 240)]
"""Straight on the photo, on a dark plate, on a light plate (dark text)."""
MATCH_INSIDE = 0.5
"""A read line belongs to a rendered line whose box holds at least this fraction of its box."""


def fonts() -> list[Path | None]:
    import matplotlib

    ttf = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    return [None, ttf / "DejaVuSans.ttf", ttf / "DejaVuSans-Bold.ttf", ttf / "DejaVuSerif.ttf"]


def photos() -> list[np.ndarray]:
    return [cover(read_rgba(package_image(*p))[..., :3], (1280, 720)) for p in PHOTOS.values()]


def text_frames(
    size: int, n: int, seed: int
) -> list[tuple[np.ndarray, list[tuple[str, tuple]], int]]:
    """``n`` frames with three lines of ``size`` px text each, the (text, box) truth, and the
    index of the photo under them."""
    from vision.synthetic import render_text

    rng = np.random.default_rng(seed)
    bases, faces = photos(), fonts()
    out = []
    for i in range(n):
        img = bases[i % len(bases)]
        truth = []
        for row in range(3):
            text = PHRASES[int(rng.integers(len(PHRASES)))]
            plate = PLATES[(i + row) % len(PLATES)]
            color = (10, 10, 10) if plate == (240, 240, 240) else (255, 255, 255)
            x, y = float(rng.uniform(0.03, 0.45)), 0.08 + 0.3 * row + float(rng.uniform(0, 0.1))
            font = faces[(i + row) % len(faces)]
            # Keep the whole line in the frame: measure it drawn at the left edge, shift it left.
            _, probe = render_text(img, text, origin=(0.01, y), size_px=size, font=font)
            x = max(0.01, min(x, 0.97 - (probe[2] - 0.01)))
            img, box = render_text(
                img, text, origin=(x, y), size_px=size, font=font, color=color, plate=plate
            )
            truth.append((text, box))
        out.append((img, truth, i % len(bases)))
    return out


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def inside(a: tuple, b: tuple) -> float:
    """Fraction of box ``a``'s area that lies inside box ``b`` (normalized xyxy)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return ix * iy / area if area > 0 else 0.0


def score(
    truth: list[tuple[str, tuple]], reads: list, own: list
) -> tuple[int, int, int, int, int, int]:
    """(words, words found, lines, exact, exact up to spaces/case, junk reads) of one frame;
    ``own`` are the reads of the bare photo (its own text, not junk)."""
    from vision.types import box_iou

    words = found = exact = loose = 0
    used: set[int] = set()
    for text, box in truth:
        hits = [k for k, r in enumerate(reads) if inside(r.box, box) >= MATCH_INSIDE]
        used.update(hits)
        got = " ".join(reads[k].text for k in sorted(hits, key=lambda k: reads[k].box[0]))
        want = text.lower().split()
        have = got.lower().split()
        words += len(want)
        found += sum(1 for w in want if w in have)
        exact += got == text
        loose += squash(got) == squash(text)
    junk = sum(
        1
        for k, r in enumerate(reads)
        if k not in used and not any(box_iou(r.box, o.box) > 0 for o in own)
    )
    return words, found, len(truth), exact, loose, junk


def rate(reader, images: list[np.ndarray], batch: int) -> float:
    reader.read_many(images[:batch])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        reader.read_many(images[i : i + batch])
    return len(images) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 24, 36, 56])
    ap.add_argument("--frames", type=int, default=6, help="frames per size (3 lines each)")
    ap.add_argument("--det-max-side", type=int, nargs="+", default=[960])
    ap.add_argument("--no-angle-cls", action="store_true")
    ap.add_argument("--speed-frames", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import onnxruntime as ort

    from vision.ocr import text_reader

    print(
        f"OCR PP-OCRv4 mobile, 1280x720 frames, onnxruntime {ort.__version__}, "
        f"{os.cpu_count()} cpus, {platform.processor() or platform.machine()}"
    )
    print(f"command: .venv/bin/python bench/bench_ocr.py {' '.join(sys.argv[1:])}".rstrip())
    sets = {size: text_frames(size, args.frames, seed=size) for size in args.sizes}
    for side in args.det_max_side:
        reader = text_reader(angle_cls=not args.no_angle_cls, det_max_side=side, device=args.device)
        print(f"\n{reader!r}\n")
        own = reader.read_many(photos())
        print("| text px | lines | word acc | line exact | exact up to spaces/case | junk |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size, frames in sets.items():
            reads = reader.read_many([im for im, _, _ in frames])
            tot = np.zeros(6, int)
            for (_, truth, base), r in zip(frames, reads, strict=True):
                tot += score(truth, r, own[base])
            words, found, lines, exact, loose, junk = (int(v) for v in tot)
            print(
                f"| {size} | {lines} | {found / words:.1%} | {exact / lines:.1%} | "
                f"{loose / lines:.1%} | {junk} |"
            )
        with_text = [im for size in args.sizes for im, _, _ in sets[size]][: args.speed_frames]
        bare = (photos() * args.speed_frames)[: args.speed_frames]
        print("\n| frames | batch 1 | batch 8 | (frames/s) |")
        print("|---|---:|---:|---|")
        for name, ims in (("with 3 text lines", with_text), ("photos, no text", bare)):
            r1, r8 = rate(reader, ims, 1), rate(reader, ims, 8)
            print(f"| {name} | {r1:.2f} | {r8:.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
