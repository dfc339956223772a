"""CLIP image and text embeddings in one space: the signal behind concepts and brand safety.

``ClipEmbedder`` wraps an ``open_clip`` architecture (``ViT-B-32`` by default) built with
``pretrained=None`` and loaded from a local weights file, so nothing is ever downloaded at run
time. A model without weights is a start-up error; random weights exist only behind an explicit
``random_weights=True`` (tests, benchmarks: same architecture, same compute, meaningless scores).

Images are preprocessed in torch, a batch at a time, exactly like open_clip's eval transform
(resize the shorter side to the model's input size with antialiased bicubic, center crop,
scale to 0..1, normalize with the model's mean/std) but without a PIL round trip per image:
frames of one video share a size, so they are resized together in one call, on the GPU when
there is one (uint8 is copied from pinned memory, 4x fewer bytes than float).

Outputs are ``(N, D)`` float32 numpy arrays with L2-normalized rows (cosine = dot product),
whatever dtype the model runs in. Implements ``vision.semantic.SemanticModel``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from vision.device import DeviceChoice, pick_device
from vision.errors import ModelError, WeightsError
from vision.image_decode import read_image_file
from vision.semantic import CLIP_SCALE, ScoreScale
from vision.types import check_rgb_batch

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-B-32"
"""open_clip architecture used when none is configured."""
DEFAULT_WEIGHTS_NAME = "clip-vit-b-32-laion2b"
"""Name of the default model's weights in ``weights/manifest.toml`` (``onscreen weights fetch``)."""
DEFAULT_BATCH_SIZE = 32
"""Images per forward pass: fills a GPU's tensor cores for ViT-B-32 without hurting latency."""
DEFAULT_TEXT_BATCH_SIZE = 128
"""Prompts per text-tower pass (text is 77 tokens: far cheaper per item than an image)."""
MAX_BATCH_SIZE = 1024
"""Largest batch accepted for either tower; more only adds memory, not speed."""
TEXT_CACHE_SIZE = 8192
"""Distinct prompts whose embeddings are kept (LRU); 512 floats each: ~16 MiB at D=512."""
RANDOM_SEED = 0
"""Seed of the random init behind ``random_weights=True``: the same model in every process."""
PREPROCESS_CHUNK_BYTES = 256 * 1024 * 1024
"""Largest float32 stack of same-size frames resized in one call (bounds preprocessing memory)."""
WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
"""Weights formats loaded: safetensors (preferred), or torch pickles read with weights_only."""
_RESIZE_MODES = ("shortest", "squash")
_INTERPOLATIONS = ("bicubic", "bilinear")


@dataclass(frozen=True)
class TextCacheInfo:
    """Counters of the per-prompt embedding cache (like ``functools.lru_cache``'s)."""

    hits: int
    misses: int
    size: int
    maxsize: int


class _VisualTower(Protocol):
    preprocess_cfg: dict[str, Any]
    """open_clip's image preprocessing: ``size``, ``resize_mode``, ``interpolation``, mean/std."""


class _ClipModel(Protocol):
    """What this module calls on an open_clip model (``CLIP`` or ``CustomTextCLIP``).

    Why: open_clip types ``create_model`` as a plain ``torch.nn.Module``, whose attribute
    lookups type as ``Tensor | Module``; this names the towers' real interface instead.
    Images are (N, 3, H, W) and tokens (N, 77) int64 on the model's device; both return
    (N, D) features in the model's dtype, not yet normalized.
    """

    visual: _VisualTower

    def encode_image(self, image: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, text: torch.Tensor) -> torch.Tensor: ...


class _DropOpenClipRandomInitNotice(logging.Filter):
    """open_clip logs "initialized randomly" whenever ``pretrained=None``, even when we load
    weights right after; we say what really happened ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _quiet_open_clip_random_notice() -> Iterator[None]:
    root = logging.getLogger()
    flt = _DropOpenClipRandomInitNotice()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_hint(model_name: str) -> str:
    if model_name == DEFAULT_MODEL:
        return f"run `onscreen weights fetch {DEFAULT_WEIGHTS_NAME}`"
    return f"fetch the weights of {model_name} (see weights/manifest.toml) and pass their path"


def _check_batch_size(name: str, value: int) -> int:
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise ValueError(f"{name} must be in 1..{MAX_BATCH_SIZE}, got {value}")
    return value


def _quantize_visual_linears(model: torch.nn.Module) -> None:
    """Swap the visual tower's ``nn.Linear`` layers for int8 dynamically quantized ones, in place.

    Dynamic quantization (weights int8 ahead of time, activations quantized per batch) needs
    no calibration data and keeps the text tower (and so every cached concept matrix) exactly
    fp32. Measured here on ViT-B-32 with 2 CPU cores: ~1.4x the fp32 tower, embedding cosine to
    fp32 >= 0.9998 (bench/bench_analyze.py reports both). ``torch.ao.quantization`` warns that
    it moves to torchao; it is what torch 2.14 ships, so the warning is silenced here.
    """
    import warnings

    visual = cast(Any, model).visual
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cast(Any, model).visual = torch.ao.quantization.quantize_dynamic(
            visual, {torch.nn.Linear}, dtype=torch.qint8
        )


class ClipEmbedder:
    """An open_clip model on one device, embedding images and texts into one (D,) space.

    Exactly one of ``weights`` (a ``.safetensors``/``.bin``/``.pt`` file holding the model's
    state dict) and ``random_weights=True`` must be given. ``device`` is a ``pick_device``
    preference. ``weights_sha256``, when the caller has already verified the file against
    the manifest, names the weights in ``model_id`` without hashing 600 MB again.
    ``batch_size`` / ``text_batch_size`` are items per forward pass; ``text_cache_size`` is the
    number of prompt embeddings kept (0: no cache).

    Thread-safe for concurrent ``embed_*`` calls; it never changes ``torch.get_num_threads()``
    (the process owner sets CPU threads once).
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        weights: Path | None = None,
        random_weights: bool = False,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        text_batch_size: int = DEFAULT_TEXT_BATCH_SIZE,
        weights_sha256: str | None = None,
        text_cache_size: int = TEXT_CACHE_SIZE,
        int8: bool = False,
    ) -> None:
        self._batch_size = _check_batch_size("batch_size", batch_size)
        self._text_batch_size = _check_batch_size("text_batch_size", text_batch_size)
        if text_cache_size < 0:
            raise ValueError(f"text_cache_size must be >= 0, got {text_cache_size}")
        if weights_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", weights_sha256):
            raise ValueError(f"weights_sha256 must be 64 hex digits, got {weights_sha256!r}")
        if weights is not None and random_weights:
            raise ModelError(
                f"CLIP {model_name}: both weights={weights} and random_weights=True given; "
                "choose one"
            )
        if weights is None and not random_weights:
            raise ModelError(
                f"CLIP {model_name}: no weights given. {_fetch_hint(model_name).capitalize()} "
                "and pass the file as weights=; random weights only with an explicit "
                "--random-weights flag (tests, benchmarks)"
            )
        config = open_clip.get_model_config(model_name)
        if config is None:
            known = ", ".join(m for m in open_clip.list_models() if m.startswith("ViT-B"))
            raise ModelError(f"unknown CLIP architecture {model_name!r}; e.g. {known}")
        weights_path = None if weights is None else Path(weights)
        if weights_path is not None:
            if not weights_path.is_file():
                raise WeightsError(
                    f"CLIP weights file {weights_path} not found: {_fetch_hint(model_name)}"
                )
            if weights_path.suffix.lower() not in WEIGHTS_SUFFIXES:
                raise WeightsError(
                    f"CLIP weights file {weights_path}: unsupported format "
                    f"{weights_path.suffix!r}; use one of {', '.join(WEIGHTS_SUFFIXES)}"
                )

        self._choice = pick_device(device)
        self._model_name = model_name
        self._dim = int(config["embed_dim"])
        model = self._build(model_name, weights_path)
        model.eval().requires_grad_(False)
        self._model = cast(
            _ClipModel, model.to(device=self._choice.device, dtype=self._choice.dtype)
        )
        self._int8 = bool(int8)
        if self._int8:
            if self._choice.is_cuda:
                raise ModelError(
                    "int8 dynamic quantization of CLIP runs on a CPU only; on a GPU CLIP runs in "
                    "fp16, which is faster still: drop --clip-int8 or pass --device cpu"
                )
            _quantize_visual_linears(model)

        pp = dict(self._model.visual.preprocess_cfg)
        size = pp["size"]
        self._size = (int(size), int(size)) if isinstance(size, int) else tuple(map(int, size))
        self._resize_mode = str(pp.get("resize_mode", "shortest"))
        self._interpolation = str(pp.get("interpolation", "bicubic"))
        if self._resize_mode not in _RESIZE_MODES or self._interpolation not in _INTERPOLATIONS:
            raise ModelError(
                f"CLIP {model_name}: preprocessing {self._resize_mode}/{self._interpolation} "
                f"is not supported; supported: resize {_RESIZE_MODES}, "
                f"interpolation {_INTERPOLATIONS}"
            )
        dev = self._choice.device
        self._mean = torch.tensor(pp["mean"], dtype=torch.float32, device=dev).view(1, 3, 1, 1)
        self._std = torch.tensor(pp["std"], dtype=torch.float32, device=dev).view(1, 3, 1, 1)

        try:
            self._tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:  # HF tokenizers may want a download: say so, never hang
            raise ModelError(f"CLIP {model_name}: cannot load its tokenizer: {exc}") from exc

        if weights_path is None:
            self._is_random = True
            self._model_id = f"{model_name}@random-seed{RANDOM_SEED}-torch{torch.__version__}"
            log.warning(
                "CLIP %s IS RUNNING WITH RANDOM WEIGHTS (seed %d): embeddings, concept and "
                "safety scores are NOT MEANINGFUL. Use this only for tests and benchmarks; "
                "%s for real results.",
                model_name,
                RANDOM_SEED,
                _fetch_hint(model_name),
            )
        else:
            self._is_random = False
            sha = (weights_sha256 or _sha256(weights_path)).lower()
            self._model_id = f"{model_name}@sha256:{sha[:16]}"
            log.info("CLIP %s loaded from %s on %s", model_name, weights_path, self._choice.name)

        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_max = text_cache_size
        self._cache_lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def int8(self) -> bool:
        """True when the visual tower's linear layers run int8 (``int8=True``, CPU only)."""
        return self._int8

    @staticmethod
    def _build(model_name: str, weights: Path | None) -> torch.nn.Module:
        """The architecture on CPU in fp32: seeded random init, then the weights if given.

        The init runs under a forked RNG so seeding here never disturbs the caller's RNG.
        """
        with torch.random.fork_rng(devices=[]), _quiet_open_clip_random_notice():
            torch.manual_seed(RANDOM_SEED)
            model = open_clip.create_model(model_name, pretrained=None, device="cpu")
        if weights is not None:
            try:
                open_clip.load_checkpoint(model, str(weights), strict=True, weights_only=True)
            except Exception as exc:  # corrupt file, pickle refused, wrong architecture
                detail = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())
                detail = detail if len(detail) <= 300 else detail[:297] + "..."
                raise WeightsError(
                    f"CLIP weights file {weights} cannot be loaded into {model_name}: "
                    f"{type(exc).__name__}: {detail}. Is it the right file? "
                    f"{_fetch_hint(model_name)}"
                ) from exc
        return model

    # -- properties --------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Embedding size D (512 for ViT-B-32)."""
        return self._dim

    @property
    def model_id(self) -> str:
        """``<arch>@sha256:<16 hex>`` of the weights, or ``<arch>@random-seed0-torch<ver>``.

        Keys on-disk caches of concept matrices: changing the model or its weights (or, for a
        random init, torch's init code) rebuilds them.
        """
        return self._model_id

    @property
    def is_random(self) -> bool:
        """True for ``random_weights=True``: mark every score made with it "not meaningful"."""
        return self._is_random

    @property
    def name(self) -> str:
        """``clip`` or ``clip-random``: what notices and metrics call this model."""
        base = "clip-random" if self._is_random else "clip"
        return f"{base}-int8" if self._int8 else base

    @property
    def meaningful(self) -> bool:
        return not self._is_random

    @property
    def score_scale(self) -> ScoreScale:
        return CLIP_SCALE

    neutral_texts: tuple[str, ...] = ()

    @property
    def visual_dim(self) -> int:
        return self._dim

    @property
    def device(self) -> DeviceChoice:
        return self._choice

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (height, width) in pixels, e.g. (224, 224)."""
        return self._size  # type: ignore[return-value]

    @property
    def text_cache_info(self) -> TextCacheInfo:
        with self._cache_lock:
            return TextCacheInfo(self._hits, self._misses, len(self._cache), self._cache_max)

    def __repr__(self) -> str:
        return f"ClipEmbedder({self._model_id!r}, device={self._choice.name!r})"

    # -- images ------------------------------------------------------------------------------

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """(H, W, 3) uint8 RGB images -> (N, 3, h, w) model input on the device, model dtype.

        Equivalent to open_clip's eval transform (shorter side to the input size with
        antialiased bicubic, values clamped and rounded to 0..255 as PIL does, center crop,
        normalize). Same-size images are resized in one call, in chunks bounded by
        ``PREPROCESS_CHUNK_BYTES``.
        """
        imgs = check_rgb_batch(images)
        dev = self._choice.device
        th, tw = self._size
        out = torch.empty((len(imgs), 3, th, tw), dtype=self._choice.dtype, device=dev)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(imgs):
            groups.setdefault((img.shape[0], img.shape[1]), []).append(i)
        for (h, w), idx in groups.items():
            per_image = h * w * 3 * 4
            step = max(1, PREPROCESS_CHUNK_BYTES // per_image)
            for start in range(0, len(idx), step):
                chunk = idx[start : start + step]
                out[chunk] = self._preprocess_same_size([imgs[i] for i in chunk], h, w)
        return out

    def _preprocess_same_size(self, imgs: list[np.ndarray], h: int, w: int) -> torch.Tensor:
        dev = self._choice.device
        host = torch.from_numpy(np.stack(imgs))  # (n, h, w, 3) uint8
        if self._choice.is_cuda:
            host = host.pin_memory()
        x = host.to(dev, non_blocking=True).permute(0, 3, 1, 2)
        # On a CPU the resize runs on uint8, channels-last: torch's AVX kernels for antialiased
        # uint8 resampling are ~6x faster on 1280x720 frames than float32, and round and clamp
        # to 0..255 as PIL does by construction (measured: the component went from 0.82 to
        # >= 0.9 of the bare visual tower). CUDA has no uint8 antialias kernel: float there.
        x = (
            x.contiguous(memory_format=torch.channels_last)
            if not self._choice.is_cuda
            else x.float()
        )
        th, tw = self._size
        if self._resize_mode == "squash":
            nh, nw = th, tw
        elif th == tw:  # torchvision Resize(int): shorter side to size, int() on the longer
            short, long = (h, w) if h <= w else (w, h)
            new_long = int(th * long / short)
            nh, nw = (th, new_long) if h <= w else (new_long, th)
        else:  # open_clip ResizeKeepRatio for non-square input: cover the target box
            scale = max(th / h, tw / w)
            nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(
                x, size=(nh, nw), mode=self._interpolation, align_corners=False, antialias=True
            )
            if x.is_floating_point():
                x = x.clamp_(0.0, 255.0).round_()
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        x = x[:, :, top : top + th, left : left + tw].float()
        x = (x / 255.0 - self._mean) / self._std
        return x.to(self._choice.dtype)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(H, W, 3) uint8 RGB images -> (N, D) float32, L2-normalized rows.

        Runs ``batch_size`` images per forward pass; sizes may differ between images.
        """
        images = list(images)
        out = np.empty((len(images), self._dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self._batch_size):
                batch = images[start : start + self._batch_size]
                try:
                    x = self.preprocess(batch)
                except ValueError as exc:
                    raise ValueError(f"{exc} (batch starting at index {start})") from None
                feats = self._model.encode_image(x)
                out[start : start + len(batch)] = self._to_numpy(feats)
        return out

    def visual_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """CLIP's image embedding doubles as its appearance feature: trained against captions
        that describe colour, shape and style, it keeps them (Pinterest-style visual search
        runs on exactly this)."""
        return self.embed_images(images)

    def embed_image_files(self, paths: Sequence[Path]) -> np.ndarray:
        """Image files (JPEG/PNG/WebP) -> (N, D) float32, L2-normalized rows.

        Decodes one batch at a time so memory holds at most ``batch_size`` decoded images;
        an unreadable file raises MediaError naming it.
        """
        paths = [Path(p) for p in paths]
        out = np.empty((len(paths), self._dim), dtype=np.float32)
        for start in range(0, len(paths), self._batch_size):
            chunk = paths[start : start + self._batch_size]
            out[start : start + len(chunk)] = self.embed_images([read_image_file(p) for p in chunk])
        return out

    # -- texts -------------------------------------------------------------------------------

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Prompts -> (N, D) float32, L2-normalized rows; repeated prompts come from a cache.

        Each distinct prompt is encoded once per process (LRU of ``text_cache_size``): rules
        reloads and safety classes repeat the same prompts. Prompts longer than the model's
        context (77 tokens) are truncated by the tokenizer.
        """
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a sequence of prompts, got a single str")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for t in texts:
                if t in found:
                    continue
                vec = self._cache.get(t)
                if vec is not None:
                    self._cache.move_to_end(t)
                    found[t] = vec
                    self._hits += 1
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            encoded = self._encode_texts(missing)
            with self._cache_lock:
                self._misses += len(missing)
                for t, vec in zip(missing, encoded, strict=True):
                    vec.setflags(write=False)
                    found[t] = vec
                    if self._cache_max:
                        self._cache[t] = vec
                        self._cache.move_to_end(t)
                while len(self._cache) > self._cache_max:
                    self._cache.popitem(last=False)
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def _encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        rows: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self._text_batch_size):
                tokens = self._tokenizer(texts[start : start + self._text_batch_size])
                tokens = tokens.to(self._choice.device, non_blocking=True)
                rows.extend(self._to_numpy(self._encode_tokens(tokens)))
        return [r.copy() for r in rows]

    def _encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """open_clip's ``encode_text``, run only up to the batch's longest prompt.

        CLIP's text tower is causal and pools at the end-of-text token, so padding after the
        last EOT cannot change the result; prompts are ~10 of the 77 positions, so trimming
        makes the text tower several times faster (IAB vocabulary: ~1400 prompts). Models
        other than the plain causal, argmax-pooled ``open_clip.model.CLIP`` take the stock path.
        """
        # The text tower's internals are plain nn.Module attributes of open_clip's CLIP, which
        # ships no types: checked by the ``trimmable`` test below, not by the type checker.
        m: Any = self._model
        trimmable = (
            type(m) is open_clip.model.CLIP
            and getattr(m, "text_pool_type", None) == "argmax"
            and getattr(m, "attn_mask", None) is not None
        )
        if not trimmable:
            return m.encode_text(tokens)
        length = int(tokens.argmax(dim=-1).max()) + 1  # EOT has the highest token id
        t = tokens[:, :length]
        cast_dtype = m.transformer.get_cast_dtype()
        x = m.token_embedding(t).to(cast_dtype) + m.positional_embedding[:length].to(cast_dtype)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), t.argmax(dim=-1)]
        proj = m.text_projection
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    @staticmethod
    def _to_numpy(feats: torch.Tensor) -> np.ndarray:
        # Normalize in fp32: an fp16 norm of a 512-d vector loses digits the cosine needs.
        return F.normalize(feats.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)
