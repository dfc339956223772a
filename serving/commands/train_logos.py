"""``onscreen train-logos RULES_DIR [--out weights/logos-<name>.pt]``: a YOLO logo detector
for the rules directory's brands, trained on synthetic frames from NudeNet's YOLOv8n weights
(or ``--from-scratch``), offline.

``--out`` defaults to ``weights/logos-<name>.pt``, ``<name>`` the rules directory's name (its
parent's when it is called ``rules``: ``examples/rules`` -> ``weights/logos-examples.pt``).
Epochs, images, size and batch default to the device's budget (a few minutes on a CPU; see
``vision.logo_training.train.BUDGETS``).

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
from vision.logo_training.train import BUDGETS, train_logo_detector


def default_out(rules_dir: Path) -> Path:
    """``weights/logos-<name>.pt`` for a rules directory (see the module docstring)."""
    rules_dir = rules_dir.resolve()
    name = rules_dir.parent.name if rules_dir.name == "rules" else rules_dir.name
    return Path("weights") / f"logos-{name or 'brands'}.pt"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-logos",
        help="train a YOLO logo detector for a rules directory's brands (offline)",
        description=(
            "Generate synthetic frames from RULES_DIR/brands/<brand>/* over real backgrounds "
            "and train a yolov8n detector on them, started from NudeNet's YOLOv8n weights "
            "(AGPL-3.0, so the detector is too) unless --from-scratch; writes OUT and OUT.json."
        ),
    )
    cpu, gpu = BUDGETS["cpu"], BUDGETS["cuda"]
    p.add_argument("rules_dir", type=Path, metavar="RULES_DIR", help="rules dir (or brands dir)")
    p.add_argument(
        "--out", type=Path, help="weights file to write (default: weights/logos-<name>.pt)"
    )
    p.add_argument(
        "--epochs", type=int, help=f"training epochs (default: {cpu.epochs} cpu, {gpu.epochs} cuda)"
    )
    p.add_argument(
        "--imgsz",
        type=int,
        help=f"training size, px, x32 (default: {cpu.imgsz} cpu, {gpu.imgsz} cuda)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument(
        "--images",
        type=int,
        help=f"synthetic frames (default: {cpu.images} cpu, {gpu.images} cuda)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training")
    p.add_argument(
        "--batch",
        type=int,
        help=f"training batch size (default: {cpu.batch} cpu, {gpu.batch} cuda)",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="random initial weights instead of NudeNet's (not AGPL-derived; learns far slower)",
    )
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
        args.out if args.out is not None else default_out(rules),
        epochs=args.epochs,
        imgsz=args.imgsz,
        device=args.device,
        seed=args.seed,
        n_images=args.images,
        batch=args.batch,
        workers=args.workers,
        backgrounds_dir=args.backgrounds,
        workdir=args.workdir,
        from_scratch=args.from_scratch,
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
                "derived_from": card.derived_from,
                "license": card.license,
            }
        )
    )
    return 0
