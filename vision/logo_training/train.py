"""Train a YOLO logo detector for a brands directory, offline, and register it with a card.

What is trained: ultralytics' **yolov8n architecture** (its bundled ``yolov8n.yaml``),
**started from the weights of NudeNet's YOLOv8n** (``nudenet-320n`` in the weights manifest:
the same architecture trained on real photos; :mod:`vision.logo_training.pretrained`), with
only the class head's last layer fresh. No COCO checkpoint is reachable (GitHub releases are
not). ``from_scratch=True`` starts from random weights instead: on a CPU budget that learns
nothing (mAP50 0.000 after 10 epochs, where the pretrained start reaches ~0.5 in 6; see
BENCHMARKS.md). A detector started from NudeNet's weights is derived from an AGPL-3.0 model:
its card says so (``derived_from``, ``license``).

Nothing is downloaded. ultralytics reaches for the network in three places during training,
each closed here: its data-set check calls ``check_font("Arial.ttf")`` (a download unless the
font is cached) -> answered with matplotlib's bundled DejaVuSans; the AMP check loads
``yolo26n.pt`` (a download) -> ``amp=False`` on the CPU, and on CUDA the check is skipped
(AMP on); plots (fonts again) -> ``plots=False``. ``YOLO_OFFLINE=1`` covers hub and
telemetry. A test runs a tiny training with every socket connect refused.

Horizontal flips are off (``fliplr=0``): a mirrored word mark is not the brand's logo, and
the matcher would never confirm it.

Training runs write into ``workdir`` (a temporary folder by default, removed afterwards); only
the final weights (ultralytics' ``best.pt``) are copied to ``out``, with their card beside it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision.brands import BrandRefs, load_brands
from vision.errors import ModelError
from vision.logo_training.backgrounds import load_backgrounds, training_split
from vision.logo_training.compose import ComposeConfig, YoloDataset, write_yolo_dataset
from vision.logo_training.pretrained import (
    ARCHITECTURE,
    INIT_LICENSE,
    INIT_WEIGHTS,
    pretrained_checkpoint,
)
from vision.logo_training.registry import DetectorCard, file_sha256, register_detector

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 32
"""Backgrounds the pretrained start's BatchNorm statistics are recalibrated on."""


@dataclass(frozen=True)
class Budget:
    """How much a training run does when the caller does not say: per device, because the
    run that suits a GPU (hours of CPU) is not one a user should wait for on a laptop."""

    epochs: int
    images: int
    imgsz: int
    batch: int


BUDGETS = {
    # ~6 min on 2 CPU cores from the pretrained start (mAP50 ~0.5 on the examples' brands)
    "cpu": Budget(epochs=6, images=250, imgsz=320, batch=16),
    # minutes on one GPU; the size that keeps logos down to 3% of the width a few px wide
    "cuda": Budget(epochs=60, images=4000, imgsz=640, batch=32),
}


def default_budget(device: str) -> Budget:
    """The training budget used for ``device`` when epochs/images/imgsz/batch are not given."""
    return BUDGETS["cuda" if device.strip().lower().startswith("cuda") else "cpu"]


MIN_IMGSZ, MAX_IMGSZ = 64, 1280
"""Training sizes (px, multiples of 32) accepted."""
MAX_EPOCHS = 1000
MAX_IMAGES = 200_000
"""Upper bounds of a training run: finite, well above any real run."""

METRIC_KEYS = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
}
"""ultralytics' validation metric names -> the card's."""


@dataclass(frozen=True)
class TrainResult:
    """A finished training: the weights file, its card, and the data set it learnt from."""

    weights: Path
    card: DetectorCard
    dataset: YoloDataset


def brands_for(source: Path | Sequence[BrandRefs]) -> tuple[BrandRefs, ...]:
    """Brands from a rules directory (its ``brands/``), a brands directory, or loaded refs."""
    if isinstance(source, (str, Path)):
        root = Path(source)
        return load_brands(root / "brands" if (root / "brands").is_dir() else root)
    refs = tuple(source)
    if not refs:
        raise ModelError("train_logo_detector needs at least one brand")
    return refs


@contextlib.contextmanager
def _ultralytics_offline(amp: bool) -> Iterator[None]:
    """Close ultralytics' download paths during training (see the module docstring), and
    its Ray Tune callback: with Ray installed (``onscreen[ray]``) it asks Ray for a trial id at
    every epoch, outside any Tune session, and warns each time."""
    import matplotlib
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer
    import ultralytics.utils.plotting as plotting

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"

    def local_font(*_args: object, **_kwargs: object) -> Path:
        return font

    def amp_without_download(_model: object) -> bool:
        return amp

    saved = (data_utils.check_font, plotting.check_font, trainer.check_amp)
    data_utils.check_font = plotting.check_font = local_font
    trainer.check_amp = amp_without_download
    # (an error under -W error; we never train inside Tune). Ray is imported only if installed.
    tune_callbacks: dict[str, Any] = {}
    saved_tune: dict[str, Any] = {}
    if importlib.util.find_spec("ray") is not None:
        from ultralytics.utils.callbacks import raytune

        tune_callbacks = raytune.callbacks
        saved_tune = dict(tune_callbacks)
        tune_callbacks.clear()
    try:
        yield
    finally:
        data_utils.check_font, plotting.check_font, trainer.check_amp = saved
        tune_callbacks.update(saved_tune)


def _progress_printer(epochs: int, started: float) -> Callable[[Any], None]:
    printed: set[int] = set()

    def on_fit_epoch_end(trainer: Any) -> None:
        if trainer.epoch in printed or trainer.epoch >= epochs:
            return  # ultralytics calls it again after the final validation
        printed.add(trainer.epoch)
        metrics = getattr(trainer, "metrics", {}) or {}
        losses: dict[str, Any] = {}
        if getattr(trainer, "tloss", None) is not None:
            losses = dict(trainer.label_loss_items(trainer.tloss, prefix="train"))
        loss_s = "".join(f" {k.split('/')[-1]} {float(v):.3f}" for k, v in losses.items())
        m = metrics.get("metrics/mAP50(B)")
        map_s = f" val mAP50 {float(m):.3f}" if m is not None else ""
        print(
            f"train-logos: epoch {trainer.epoch + 1}/{epochs}{loss_s}{map_s} "
            f"({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    return on_fit_epoch_end


def train_logo_detector(
    brands: Path | Sequence[BrandRefs],
    out: Path,
    *,
    epochs: int | None = None,
    imgsz: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    n_images: int | None = None,
    batch: int | None = None,
    workers: int = 0,
    backgrounds_dir: Path | None = None,
    workdir: Path | None = None,
    compose: ComposeConfig | None = None,
    progress: bool = True,
    from_scratch: bool = False,
) -> TrainResult:
    """Generate a data set, train yolov8n on it (from NudeNet's weights unless
    ``from_scratch``), write ``out`` and its card.

    ``brands``: a rules directory, a brands directory, or loaded :class:`BrandRefs` (the
    classes, in order). ``device``: ``cpu``, ``cuda`` or ``cuda:N``. ``workers``: data
    loader processes (0 loads in this process: the gentlest on a shared CPU). ``workdir``:
    where the data set and ultralytics' run go (kept); None uses a temporary folder that is
    removed. ``progress`` prints one line per epoch on stderr. Raises ModelError for bad
    arguments or a failed training. ``epochs``, ``imgsz``, ``n_images``, ``batch``: None takes
    the device's :data:`BUDGETS` entry.
    """
    budget = default_budget(device)
    epochs = budget.epochs if epochs is None else epochs
    imgsz = budget.imgsz if imgsz is None else imgsz
    n_images = budget.images if n_images is None else n_images
    batch = budget.batch if batch is None else batch
    out = Path(out)
    if out.suffix != ".pt":
        raise ModelError(f"--out {out}: a logo detector is written as a .pt file")
    if not (1 <= epochs <= MAX_EPOCHS):
        raise ModelError(f"epochs must be 1..{MAX_EPOCHS}, got {epochs}")
    if not (MIN_IMGSZ <= imgsz <= MAX_IMGSZ) or imgsz % 32:
        raise ModelError(
            f"imgsz must be a multiple of 32 in {MIN_IMGSZ}..{MAX_IMGSZ} px, got {imgsz}"
        )
    if not (2 <= n_images <= MAX_IMAGES):
        raise ModelError(f"images must be 2..{MAX_IMAGES}, got {n_images}")
    if batch < 1 or workers < 0:
        raise ModelError(f"batch must be >= 1 and workers >= 0, got {batch}, {workers}")
    dev = device.strip().lower()
    if not (dev == "cpu" or dev == "cuda" or dev.startswith("cuda:")):
        raise ModelError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if dev.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ModelError("device cuda asked for, but torch sees no CUDA device")
    refs = brands_for(brands)
    init_weights = None
    if not from_scratch:
        from vision.weights import resolve

        init_weights = resolve(INIT_WEIGHTS)  # verified by sha256; names the fetch command
    with contextlib.ExitStack() as stack:
        if workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="train-logos-")))
        else:
            work = Path(workdir)
            work.mkdir(parents=True, exist_ok=True)
        ref_digests = [file_sha256(p) for r in refs for p in r.paths if Path(p).is_file()]
        bgs = training_split(load_backgrounds(backgrounds_dir, exclude_sha256=ref_digests))
        started = time.perf_counter()
        if progress:
            print(
                f"train-logos: writing {n_images} synthetic frames of {len(refs)} brand(s) "
                f"over {len(bgs)} backgrounds to {work / 'data'}",
                file=sys.stderr,
                flush=True,
            )
        dataset = write_yolo_dataset(
            refs, bgs, work / "data", n_images=n_images, seed=seed, cfg=compose or ComposeConfig()
        )
        init = None
        if init_weights is not None:
            init = work / "init.pt"
            transfer = pretrained_checkpoint(
                init_weights,
                [r.brand for r in refs],
                init,
                calibration_images=[b.image for b in bgs[:CALIBRATION_IMAGES]],
                imgsz=imgsz,
            )
            if progress:
                print(f"train-logos: starting from {transfer.summary}", file=sys.stderr, flush=True)
        metrics = _train(
            dataset, work, epochs, imgsz, dev, seed, batch, workers, progress, started, init
        )
        best = work / "run" / "weights" / "best.pt"
        if not best.is_file():
            best = work / "run" / "weights" / "last.pt"
        if not best.is_file():
            raise ModelError(f"training finished without writing weights under {work / 'run'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, out)
    seconds = time.perf_counter() - started
    card = register_detector(
        out,
        refs,
        imgsz=imgsz,
        epochs=epochs,
        n_images=n_images,
        seed=seed,
        train_seconds=seconds,
        metrics=metrics,
        architecture=ARCHITECTURE,
        pretrained=init_weights is not None,
        derived_from=INIT_WEIGHTS if init_weights is not None else "",
        license=INIT_LICENSE if init_weights is not None else "",
    )
    if progress:
        print(f"train-logos: wrote {out} and {out.name}.json in {seconds:.0f} s", file=sys.stderr)
    return TrainResult(out, card, dataset)


def _train(
    dataset: YoloDataset,
    work: Path,
    epochs: int,
    imgsz: int,
    device: str,
    seed: int,
    batch: int,
    workers: int,
    progress: bool,
    started: float,
    init: Path | None,
) -> dict[str, float]:
    from vision.detectors import _import_yolo

    YOLO = _import_yolo()
    amp = device.startswith("cuda")
    model = YOLO(ARCHITECTURE, task="detect")
    if progress:
        model.add_callback("on_fit_epoch_end", _progress_printer(epochs, started))
    try:
        with _ultralytics_offline(amp):
            results = model.train(
                data=str(dataset.data_yaml),
                epochs=epochs,
                imgsz=imgsz,
                device=device,
                seed=seed,
                deterministic=True,
                batch=batch,
                workers=workers,
                amp=amp,
                plots=False,
                pretrained=str(init) if init is not None else False,
                project=str(work),
                name="run",
                exist_ok=True,
                fliplr=0.0,
                verbose=False,
                val=True,
                cache=False,
            )
    except ModelError:
        raise
    except Exception as exc:  # ultralytics raises many types
        raise ModelError(
            f"logo detector training failed ({type(exc).__name__}: {exc}); data set at "
            f"{dataset.root}"
        ) from exc
    raw = dict(getattr(results, "results_dict", {}) or {})
    out: dict[str, float] = {}
    for key, name in METRIC_KEYS.items():
        if key in raw and math.isfinite(float(raw[key])):
            out[name] = round(float(raw[key]), 4)
    return out
