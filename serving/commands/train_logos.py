"""``onscreen train-logos RULES_DIR --out weights/logos-<name>.pt``: a YOLO logo detector for
the rules directory's brands, trained from scratch on synthetic frames, offline.

Writes the weights and their card (``<out>.json``: sha256, brands in class order, the brands'
fingerprint, imgsz, epochs, date, validation metrics); one progress line per epoch on stderr.
Training runs in a temporary folder (``--workdir`` keeps it). See
:mod:`vision.logo_training.train` for what is trained and why nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vision.errors import MediaError
from vision.logo_training.train import (
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    DEFAULT_IMAGES,
    DEFAULT_IMGSZ,
    train_logo_detector,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-logos",
        help="train a YOLO logo detector for a rules directory's brands (offline)",
        description=(
            "Generate synthetic frames from RULES_DIR/brands/<brand>/* over real backgrounds "
            "and train a yolov8n detector from scratch on them; writes OUT and OUT.json."
        ),
    )
    p.add_argument("rules_dir", type=Path, metavar="RULES_DIR", help="rules dir (or brands dir)")
    p.add_argument(
        "--out", type=Path, required=True, help="weights file to write, e.g. weights/logos-x.pt"
    )
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="training epochs")
    p.add_argument("--imgsz", type=int, default=DEFAULT_IMGSZ, help="training size, px (x32)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="synthetic frames")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="training batch size")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--backgrounds", type=Path, help="extra folder of background pictures")
    p.add_argument("--workdir", type=Path, help="keep the data set and run here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rules: Path = args.rules_dir
    if not rules.is_dir():
        raise MediaError(f"{rules}: not a directory (expected a rules dir with brands/)")
    result = train_logo_detector(
        rules,
        args.out,
        epochs=args.epochs,
        imgsz=args.imgsz,
        device=args.device,
        seed=args.seed,
        n_images=args.images,
        batch=args.batch,
        workers=args.workers,
        backgrounds_dir=args.backgrounds,
        workdir=args.workdir,
    )
    card = result.card
    print(
        json.dumps(
            {
                "weights": str(result.weights),
                "classes": list(card.classes),
                "epochs": card.epochs,
                "imgsz": card.imgsz,
                "train_seconds": card.train_seconds,
                "metrics": dict(card.metrics),
            }
        )
    )
    return 0
